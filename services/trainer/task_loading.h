// A normalized TaskSpec (services/jobspec/task_spec.h) made into what the runtime runs: the
// task definition, and its examples read, sampled (MeZO's seeded train / dev / test draws) and
// tokenized, every token checked against the model's vocabulary (errors name the file and line);
// and a federated client's own examples, rendered and checked the same way.
#ifndef STRATA_SERVICES_TRAINER_TASK_LOADING_H_
#define STRATA_SERVICES_TRAINER_TASK_LOADING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "proto/strata/v1/job.pb.h"
#include "runtime/data/tokenizer.h"
#include "runtime/model/model_config.h"
#include "runtime/task/task_data.h"

namespace strata {

task::TaskDefinition TaskDefinitionFromSpec(const v1::TaskSpec& spec);

// The training sample and the dev examples.
absl::StatusOr<task::TaskData> LoadTaskData(const v1::TaskSpec& spec, const Tokenizer& tokenizer,
                                            const ModelConfig& model);

// A file of more lines than this is refused rather than read into memory.
inline constexpr int64_t kMaxTaskExamples = 2'000'000;

// Every line of `lines` (read from `path` by task::ReadJsonl), in order, rendered with
// `definition` and tokenized, each token checked against the model's vocabulary (errors name
// `path` and the line): a federated client's own examples, all of them.
absl::StatusOr<std::vector<task::TaskExample>> TokenizeTaskExamples(
    const task::TaskDefinition& definition, const std::vector<nlohmann::json>& lines,
    const std::string& path, const Tokenizer& tokenizer, const ModelConfig& model);

// The examples `strata-train eval` scores: the test sample (the dev examples without a
// test_path), each after `shots` demonstrations drawn from the training sample (seeded by the
// example's position, never the example itself).
absl::StatusOr<std::vector<task::TaskExample>> LoadTaskEvalExamples(const v1::TaskSpec& spec,
                                                                    const Tokenizer& tokenizer,
                                                                    const ModelConfig& model,
                                                                    int shots);

}  // namespace strata

#endif  // STRATA_SERVICES_TRAINER_TASK_LOADING_H_
