// Single-process zeroth-order training (MeZO family) with the runtime's loss-only forward:
// evaluation, checkpoints + the step log, and exact resume.
//
// Checkpoint directory layout:
//   steplog.bin          one record per step (runtime/zo/step_log.h), fsynced each step
//   ckpt-0000000120/     a storage/checkpoint.h checkpoint: the Hugging Face checkpoint of the
//                        weights after step 120 (pending update flushed), zo_state.safetensors
//                        (Sparse-MeZO thresholds, momentum/Adam moments) and MANIFEST.json with
//                        checksums and the position (step, data cursor, optimizer counters)
// Resume loads the newest checkpoint that verifies (a truncated or corrupted one is skipped and
// reported) and replays the log after it: no completed step is lost, and the weights equal an
// uninterrupted run's bit for bit.
#ifndef STRATA_RUNTIME_TRAIN_ZO_TRAINER_H_
#define STRATA_RUNTIME_TRAIN_ZO_TRAINER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/data/dataset.h"
#include "runtime/model/transformer.h"
#include "runtime/offload/offloaded_zo.h"
#include "runtime/optim/lr_schedule.h"
#include "runtime/peft/trainable_adapters.h"
#include "runtime/task/task_data.h"
#include "runtime/train/attempt_fence.h"
#include "runtime/train/train_batches.h"
#include "runtime/train/train_events.h"
#include "runtime/zo/step_log.h"
#include "runtime/zo/zo_engine.h"
#include "runtime/zo/zo_optimizer.h"
#include "storage/checkpoint.h"

namespace strata {

struct ZoTrainerOptions {
  zo::ZoConfig zo;
  int batch = 8;  // Sequences per step (a task: examples).
  int seq = 64;   // Tokens per sequence (a task: the longest prompt + candidate).
  int64_t steps = 1000;
  // The learning-rate schedule (runtime/optim/lr_schedule.h); total_steps taken from `steps`
  // when 0.
  LrSchedule lr{LrSchedule::Kind::kConstant, 1e-4, 0, 0, 0};
  int64_t eval_every = 0;
  int eval_batches = 8;
  int64_t log_every = 50;
  uint64_t data_seed = 0;
  std::string checkpoint_dir;  // Empty: nothing is persisted.
  // >= 1: the job attempt this run is. Resume claims checkpoint_dir for it (AttemptFence), and
  // once a newer attempt claims the directory the run stops before its next write
  // (FAILED_PRECONDITION). 0: no fencing.
  int64_t attempt = 0;
  std::string job_id;  // With attempt: the job the directory is claimed for.
  // Stream the transformer blocks from NVMe or a pinned host tier (runtime/offload): sgd and
  // sign variants. The results are bitwise those of in-memory training; evaluation, checkpoints
  // and export stream the blocks within the memory budget.
  std::optional<OffloadedZo::Options> offload;
  int64_t checkpoint_every = 0;
  int keep_checkpoints = 2;
  // Checked after every step: when it returns true, Run applies the pending update, writes a
  // checkpoint (with checkpoint_dir) and returns CANCELLED — a graceful stop that loses nothing.
  std::function<bool()> stop_requested;
  // A step log kept elsewhere (the coordinator's copy) that continues this run's initial
  // weights: when checkpoint_dir holds no checkpoint and no log yet, its records are replayed
  // from the initial weights (and appended to the local log), so a run restarted on another
  // machine loses no logged step.
  std::string replay_log;
  // Called with each step's record once it is durable in the local step log; a resumed run
  // first calls it with the local log's records beyond replay_log's last step (all of them
  // without one), so whoever collects them has every step once resumed.
  std::function<void(const zo::ZoStepRecord&)> on_step;
  TrainEvents events;
  // Train these adapters (LoRA or a prefix; attached to the model, base frozen) instead of the
  // model's weights, in memory or over the offloaded base: checkpoints and exports hold the
  // adapters in PEFT's layout. Not owned.
  TrainableAdapters* adapters = nullptr;
  // Train on this task's examples (its objective; evaluations on its dev examples with its
  // metrics) instead of the corpora. Not owned.
  const task::TaskData* task = nullptr;
};

class ZoTrainer {
 public:
  using Log = std::function<void(const std::string&)>;

  // `model`, `train`, `eval` must outlive the trainer; `eval` may be null, and both are with
  // options.task.
  static absl::StatusOr<std::unique_ptr<ZoTrainer>> Create(Transformer* model,
                                                           const TokenCorpus* train,
                                                           const TokenCorpus* eval,
                                                           ZoTrainerOptions options);

  // Restores the newest checkpoint and replays the step log after it; on a fresh directory
  // writes the step-0 checkpoint. Returns the step training continues after.
  absl::StatusOr<int64_t> Resume(const Log& log);
  absl::StatusOr<zo::ZoStepRecord> Step();
  // Held-out loss, and a task's metrics (pending update applied first).
  absl::StatusOr<EvalResult> Evaluate();
  bool has_eval() const { return eval_ != nullptr || options_.task != nullptr; }
  absl::Status SaveCheckpoint();
  // Writes the current weights (pending update applied) as a Hugging Face checkpoint directory;
  // offloaded blocks are read from NVMe one at a time, so the memory budget holds. With adapters,
  // the adapters as a PEFT directory (adapter_config.json + adapter_model.safetensors).
  absl::Status ExportHf(const std::string& dir);
  // Resume, then the remaining steps with logging, evaluation and checkpoints.
  absl::Status Run(const Log& log);

  int64_t step() const { return step_; }

 private:
  // Replays options_.replay_log from the initial weights (a fresh checkpoint directory).
  absl::Status ReplayFromStart(const Log& log);
  // Applies `record`, which must be step step_ + 1 (else DATA_LOSS naming `source`), and moves
  // the data sampler with it.
  absl::Status ReplayNext(const zo::ZoStepRecord& record, const std::string& source);
  ZoTrainer(Transformer* model, const TokenCorpus* eval, ZoTrainerOptions options,
            TrainBatches batches, std::unique_ptr<zo::ZoEngine> engine);
  double LrAt(int64_t step) const;
  // Creates the offloaded engine from the arena's current weights, when it is not there yet.
  absl::Status EnsureEngine();
  // Applies the pending update.
  absl::Status FlushPending();
  // Restores the per-tensor state (thresholds, moments, Adam counter) from checkpoint `ckpt`.
  absl::Status RestoreArithmetic(const std::string& ckpt, const nlohmann::json& state,
                                 zo::ZoOptimizer& arithmetic);

  Transformer* model_;
  const TokenCorpus* eval_;
  ZoTrainerOptions options_;
  TrainBatches batches_;
  // In memory from Create; offloaded (options_.offload) from the first Resume or Step, built
  // from the seed, the checkpoint or the arena.
  std::unique_ptr<zo::ZoEngine> engine_;
  std::unique_ptr<zo::StepLogWriter> log_;
  std::unique_ptr<CheckpointManager> checkpoints_;
  std::optional<AttemptFence> fence_;  // With options_.attempt.
  int64_t tokens_total_ = 0;  // Tokens of the batches stepped over since this run started.
  int64_t step_ = 0;
  int64_t checkpointed_step_ = -1;  // Step of the newest checkpoint this run committed.
};

}  // namespace strata

#endif  // STRATA_RUNTIME_TRAIN_ZO_TRAINER_H_
