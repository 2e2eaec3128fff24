// `strata-train eval`: scores a checkpoint on a task without training it. The model comes from
// --init_from (a Hugging Face checkpoint directory or a job's export), optionally with a PEFT
// adapter directory (--adapter); the task from --task (a task file, docs/tasks.md, with
// --task_config overrides). It scores the task's test examples (its dev examples without a
// test_path) zero-shot and, with --shots=K (or the task's num_demonstrations), K-shot in context
// with demonstrations from the training sample, and prints each line of metrics and then one
// JSON object: {"task", "examples", "zero_shot": {metric: value}, "k_shot": {...}, "shots"}.
#ifndef STRATA_SERVICES_TRAINER_EVAL_COMMAND_H_
#define STRATA_SERVICES_TRAINER_EVAL_COMMAND_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace strata {

struct EvalShared {
  std::string init_from;
  std::string adapter;
  std::string tokenizer;  // Empty: the model directory's, else the byte tokenizer.
  std::string task;
  std::vector<std::string> task_config;
  uint64_t seed = 1;  // The task's sampling seed when it sets none.
  int batch = 16;     // Examples per forward pass.
  int seq = 0;        // Longest row (at most the model's maximum); 0: the model's maximum.
  int threads = 0;
  int shots = -1;     // -1: the task's num_demonstrations.
};

absl::Status RunEval(const std::vector<std::string>& args, const EvalShared& shared,
                     std::FILE* out);

}  // namespace strata

#endif  // STRATA_SERVICES_TRAINER_EVAL_COMMAND_H_
