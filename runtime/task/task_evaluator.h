// Scores a task's examples with a model: each candidate's log-likelihood after its prompt (one
// batched loss-only pass per group of examples, through whatever runs the model's forward: its
// arena, or an offloaded ZO engine), the predicted candidate, and the task's metrics —
// classification and multiple choice: accuracy and macro F1 ("accuracy", "f1"); generation:
// exact match and token F1 of the greedy decoding against the accepted answers
// ("exact_match", "token_f1"), when a decoder is given. `loss` is the training objective's
// cross-entropy (generation: the answer tokens' mean loss).
#ifndef STRATA_RUNTIME_TASK_TASK_EVALUATOR_H_
#define STRATA_RUNTIME_TASK_TASK_EVALUATOR_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/model/transformer.h"
#include "runtime/task/task_definition.h"
#include "runtime/task/task_examples.h"

namespace strata::task {

// The model's objective-reduced loss over (tokens, targets) of shape (B, T) — with the
// objective attached to the model when the call is made.
using BatchLoss = std::function<absl::StatusOr<float>(
    absl::Span<const int32_t> tokens, absl::Span<const int32_t> targets, int B, int T)>;
// The greedy continuation of `prompt`, as text (up to a stop string).
using Decode = std::function<absl::StatusOr<std::string>(const std::vector<int32_t>& prompt)>;

struct TaskScores {
  double loss = 0;
  std::map<std::string, double> metrics;
  std::vector<int> predictions;                  // Per example (generation: none).
  std::vector<std::vector<double>> candidate_scores;  // Per example, per candidate.
  std::vector<std::string> generations;          // Generation with a decoder.
};

// `model` is the model `loss` runs (its objective is set around each call and restored).
absl::StatusOr<TaskScores> EvaluateTask(const TaskDefinition& task,
                                        absl::Span<const TaskExample> examples, Transformer* model,
                                        const BatchLoss& loss, int batch_examples, int max_length,
                                        const Decode& decode = nullptr);

}  // namespace strata::task

#endif  // STRATA_RUNTIME_TASK_TASK_EVALUATOR_H_
