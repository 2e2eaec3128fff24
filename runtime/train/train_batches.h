// The batches a trainer steps over and what it evaluates on: windows of a token corpus
// (BatchSampler, the mean token loss) or a task's examples (TaskBatcher: candidate rows with the
// batch's objective, or answer rows), behind one interface so the zeroth- and first-order
// trainers treat both alike. The position is plain data for checkpoints either way.
#ifndef STRATA_RUNTIME_TRAIN_TRAIN_BATCHES_H_
#define STRATA_RUNTIME_TRAIN_TRAIN_BATCHES_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/data/dataset.h"
#include "runtime/model/transformer.h"
#include "runtime/task/task_batch.h"
#include "runtime/task/task_data.h"
#include "runtime/task/task_evaluator.h"
#include "runtime/train/train_events.h"

namespace strata {

class TrainBatches {
 public:
  struct Options {
    int batch = 1;  // Sequences (a task: examples) per rank per step.
    int seq = 1;    // Tokens per sequence (a task: the longest row).
    uint64_t seed = 0;
    int rank = 0;
    int world_size = 1;
  };
  // Over `task` when it is set, else over `corpus`. Both must outlive the batches.
  static absl::StatusOr<TrainBatches> Create(const TokenCorpus* corpus, const task::TaskData* task,
                                             Options options);

  absl::Status Next();
  absl::Span<const int32_t> tokens() const;
  absl::Span<const int32_t> targets() const;
  int rows() const;  // B of the current batch.
  int T() const;
  // The current batch's objective (null: the mean token loss).
  const SequenceObjective* objective() const;
  SamplerPosition position() const;
  void set_position(const SamplerPosition& position);

 private:
  TrainBatches(Options options) : options_(options) {}
  Options options_;
  std::optional<BatchSampler> sampler_;
  std::optional<task::TaskBatcher> batcher_;
  std::vector<int32_t> tokens_, targets_;
  task::TaskBatch task_batch_;
};

// Attaches an objective to a model for a scope.
class ObjectiveScope {
 public:
  ObjectiveScope(Transformer* model, const SequenceObjective* objective)
      : model_(model), previous_(model->objective()) {
    model_->SetObjective(objective);
  }
  ~ObjectiveScope() { model_->SetObjective(previous_); }
  ObjectiveScope(const ObjectiveScope&) = delete;
  ObjectiveScope& operator=(const ObjectiveScope&) = delete;

 private:
  Transformer* model_;
  const SequenceObjective* previous_;
};

// One evaluation: the task's dev examples (its metrics; `batch` examples per pass) when `task`
// is set, else the mean loss over the first `eval_batches` batches of `corpus` (batch x seq).
// `loss` runs the model's forward wherever its weights are. `generate`: the model's weights are
// in its arena, so a generation task's answers are decoded (greedy) and scored too.
absl::StatusOr<EvalResult> EvaluateHeldOut(const TokenCorpus* corpus, const task::TaskData* task,
                                           Transformer* model, const task::BatchLoss& loss,
                                           int batch, int seq, int eval_batches,
                                           bool generate = false);

// "eval loss 1.2345" and each metric ("| accuracy 0.8125").
std::string DescribeEval(const EvalResult& eval);

}  // namespace strata

#endif  // STRATA_RUNTIME_TRAIN_TRAIN_BATCHES_H_
