// Single-process first-order training: AdamW with decoupled weight decay (not on norms and
// biases), global-norm gradient clipping, the shared learning-rate schedules
// (runtime/optim/lr_schedule.h), periodic evaluation on
// held-out data with the loss-only forward, and Hugging Face safetensors checkpoints.
#ifndef STRATA_RUNTIME_TRAIN_FO_TRAINER_H_
#define STRATA_RUNTIME_TRAIN_FO_TRAINER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/data/dataset.h"
#include "runtime/dist/communicator.h"
#include "runtime/model/transformer.h"
#include "runtime/optim/lr_schedule.h"
#include "runtime/peft/trainable_adapters.h"
#include "runtime/train/fo_update.h"
#include "runtime/task/task_data.h"
#include "runtime/train/attempt_fence.h"
#include "runtime/train/train_batches.h"
#include "runtime/train/train_events.h"
#include "storage/checkpoint.h"

namespace strata {

struct FoTrainerOptions {
  int batch = 8;  // Sequences per rank per step (a task: examples).
  int seq = 64;   // Tokens per sequence (a task: the longest prompt + candidate).
  int64_t steps = 100;
  // lr.total_steps is taken from `steps` when 0.
  LrSchedule lr{LrSchedule::Kind::kConstant, 1e-3, 0, 0, 0};
  float weight_decay = 0.1f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float adam_eps = 1e-8f;
  float grad_clip = 1.0f;  // 0 disables.
  int64_t eval_every = 0;  // 0: only at the end.
  int eval_batches = 8;
  int64_t log_every = 10;
  uint64_t seed = 0;  // Data order.
  // Written at the end when set (rank 0): a Hugging Face checkpoint, or with adapters a PEFT
  // adapter directory.
  std::string save_dir;
  // Data parallel across the communicator's ranks (each takes every world-th sequence of the
  // data and `batch` per step; ZeroAdamW with `zero_stage` 0-2, or Zero3 with stage 3, replaces
  // AdamW). Null: one process. Not owned. Stage 3 partitions the weights too: the model's arena
  // gives its blocks back after Create, evaluation gathers block by block, checkpoints hold each
  // rank's shard, and the full weights are gathered only for save_dir at the end.
  Communicator* comm = nullptr;
  int zero_stage = 0;
  // Stage 3: each rank's shard is initialized from this seed (the values
  // Transformer::InitializeParameters gives), one unit at a time, instead of being taken from the
  // model's arena — the whole model is never held.
  std::optional<uint64_t> init_seed;
  // AdamW state (m, v) on NVMe under these directories (ZeroAdamW's sub-group streaming), with or
  // without a communicator. Empty: in memory.
  std::vector<std::string> optimizer_state_dirs;
  // Stage 3: this rank's weight shard on NVMe under these directories too (ZeRO-Infinity; the
  // same list as optimizer_state_dirs when both are set). Only the gradient shard stays in RAM.
  std::vector<std::string> param_offload_dirs;
  // Stage 3: forward and backward on a bf16 copy of the weights (Zero3::Options::bf16_compute).
  bool bf16_compute = false;
  // Checkpoints (every checkpoint_every steps and at the end) under checkpoint_dir/rank<R>/:
  // rank 0's hold the weights (Hugging Face files), every rank's its AdamW state (its ZeRO
  // partition) and the data position. Run resumes from the newest step all ranks have.
  std::string checkpoint_dir;
  // >= 1: the job attempt this run is; each rank claims its checkpoint directory for it
  // (AttemptFence) and stops before its next checkpoint once a newer attempt claims it.
  int64_t attempt = 0;
  std::string job_id;  // With attempt: the job the directory is claimed for.
  int64_t checkpoint_every = 0;
  // Retention: the newest N checkpoints of each rank (at least 2 with several ranks, so the
  // newest step all ranks have survives a crash between their commits).
  int keep_checkpoints = 2;
  // Adapters (LoRA or a prefix): only these train (AdamW, ZeRO stage 0 over the communicator),
  // the base frozen; checkpoints and save_dir hold the adapters in PEFT's layout. Not owned.
  TrainableAdapters* adapters = nullptr;
  TrainEvents events;  // Progress, evaluations and (rank 0's) checkpoints.
  // Checked after every step: when true, Run writes a checkpoint and returns CANCELLED.
  std::function<bool()> stop_requested;
  // Train on this task's examples (its objective; evaluations on its dev examples with its
  // metrics) instead of the corpora. Not owned.
  const task::TaskData* task = nullptr;
};

struct StepStats {
  int64_t step = 0;  // 1-based: the step just taken.
  float loss = 0;
  float lr = 0;
  double grad_norm = 0;
  double tokens_per_second = 0;
};

// Where rank `rank` of a run keeps its checkpoints under `checkpoint_dir`.
std::string FoRankCheckpointDir(const std::string& checkpoint_dir, int rank);

class FoTrainer {
 public:
  // `model`, `train` and `eval` must outlive the trainer; `eval` may be null.
  static absl::StatusOr<std::unique_ptr<FoTrainer>> Create(Transformer* model,
                                                           const TokenCorpus* train,
                                                           const TokenCorpus* eval,
                                                           FoTrainerOptions options);

  absl::StatusOr<StepStats> Step();
  // Restores the newest checkpoint every rank has (nothing without checkpoint_dir or
  // checkpoints); returns the step to continue from. Run calls it first.
  absl::StatusOr<int64_t> Resume(const std::function<void(const std::string&)>& log);
  absl::Status SaveCheckpoint();
  // Mean loss over the first eval_batches batches of the held-out corpus (a fixed set), or the
  // task's dev metrics.
  absl::StatusOr<EvalResult> Evaluate();
  bool has_eval() const { return eval_ != nullptr || options_.task != nullptr; }
  // Runs the remaining steps, calling `log` with each line of progress, evaluates, saves.
  absl::Status Run(const std::function<void(const std::string&)>& log);

  int64_t step() const { return step_; }

 private:
  FoTrainer(Transformer* model, const TokenCorpus* eval, FoTrainerOptions options,
            TrainBatches batches, std::unique_ptr<FoUpdate> update);

  Transformer* model_;
  const TokenCorpus* eval_;
  FoTrainerOptions options_;
  TrainBatches batches_;
  std::unique_ptr<FoUpdate> update_;  // The stage family's weight update and its state.
  std::unique_ptr<CheckpointManager> checkpoints_;
  std::optional<AttemptFence> fence_;  // With options_.attempt.
  bool resumed_ = false;
  int rank() const { return options_.comm != nullptr ? options_.comm->rank() : 0; }
  std::string OwnCheckpointDir() const {
    return FoRankCheckpointDir(options_.checkpoint_dir, rank());
  }
  // With options_.attempt: claims this rank's checkpoint directory once (after the checkpoint
  // manager marked it).
  absl::Status ClaimCheckpointDir();
  int64_t step_ = 0;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_TRAIN_FO_TRAINER_H_
