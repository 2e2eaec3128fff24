// A normalized TaskSpec (services/jobspec/task_spec.h) made into what the runtime runs: the
// task definition, and its examples read, sampled (MeZO's seeded train / dev / test draws) and
// tokenized, every token checked against the model's vocabulary (errors name the file and line).
#ifndef STRATA_SERVICES_TRAINER_TASK_LOADING_H_
#define STRATA_SERVICES_TRAINER_TASK_LOADING_H_

#include <vector>

#include "absl/status/statusor.h"
#include "proto/strata/v1/job.pb.h"
#include "runtime/data/tokenizer.h"
#include "runtime/model/model_config.h"
#include "runtime/task/task_data.h"

namespace strata {

task::TaskDefinition TaskDefinitionFromSpec(const v1::TaskSpec& spec);

// The training sample and the dev examples.
absl::StatusOr<task::TaskData> LoadTaskData(const v1::TaskSpec& spec, const Tokenizer& tokenizer,
                                            const ModelConfig& model);

// The examples `strata-train eval` scores: the test sample (the dev examples without a
// test_path), each after `shots` demonstrations drawn from the training sample (seeded by the
// example's position, never the example itself).
absl::StatusOr<std::vector<task::TaskExample>> LoadTaskEvalExamples(const v1::TaskSpec& spec,
                                                                    const Tokenizer& tokenizer,
                                                                    const ModelConfig& model,
                                                                    int shots);

}  // namespace strata

#endif  // STRATA_SERVICES_TRAINER_TASK_LOADING_H_
