// Batches of task examples as model rows. A classification or multiple-choice example gives
// one row per candidate: the prompt, then the candidate, with only the candidate's tokens scored
// (targets elsewhere ignored); a generation example gives one row, prompt then answer, the
// answer's tokens scored. Rows are right-padded to the longest row of the batch (rounded up to a
// multiple of 8, at most max_length), and a prompt longer than max_length allows loses its
// first tokens (MeZO truncates from the left). TaskBatcher draws the training batches: `batch`
// examples per rank per step from a seeded shuffle of the examples each epoch, rank r taking
// every world_size-th of each global batch; its position is plain data, as BatchSampler's.
#ifndef STRATA_RUNTIME_TASK_TASK_BATCH_H_
#define STRATA_RUNTIME_TASK_TASK_BATCH_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/data/dataset.h"
#include "runtime/task/candidate_objective.h"
#include "runtime/task/task_definition.h"
#include "runtime/task/task_examples.h"

namespace strata::task {

struct TaskBatch {
  std::vector<int32_t> tokens, targets;  // rows x T.
  int rows = 0;
  int T = 0;
  // Classification and multiple choice: the batch's objective over its candidate rows.
  // Generation: none (the mean loss of the answer tokens).
  bool has_candidates = false;
  CandidateObjective objective;
  const SequenceObjective* sequence_objective() const {
    return has_candidates ? &objective : nullptr;
  }
};

absl::Status BuildTaskBatch(const TaskDefinition& task,
                            absl::Span<const TaskExample* const> examples, int max_length,
                            TaskBatch* out);

class TaskBatcher {
 public:
  struct Options {
    int batch = 1;  // Examples per rank per step.
    int max_length = 0;
    uint64_t seed = 0;
    int rank = 0;
    int world_size = 1;
  };
  // Fails when there are fewer examples than one global batch. `task` and `examples` must
  // outlive the batcher.
  static absl::StatusOr<TaskBatcher> Create(const TaskDefinition* task,
                                            const std::vector<TaskExample>* examples,
                                            Options options);
  absl::Status Next(TaskBatch* batch);
  const SamplerPosition& position() const { return position_; }
  void set_position(const SamplerPosition& position) { position_ = position; }

 private:
  TaskBatcher(const TaskDefinition* task, const std::vector<TaskExample>* examples,
              Options options)
      : task_(task), examples_(examples), options_(options) {}
  const TaskDefinition* task_;
  const std::vector<TaskExample>* examples_;
  Options options_;
  std::vector<int64_t> order_;
  int64_t order_epoch_ = -1;
  SamplerPosition position_;
};

}  // namespace strata::task

#endif  // STRATA_RUNTIME_TASK_TASK_BATCH_H_
