// See fo_trainer.h.
#include "runtime/train/fo_trainer.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/base/status_macros.h"
#include "runtime/train/adapter_adamw_update.h"
#include "runtime/train/local_adamw_update.h"
#include "runtime/train/zero3_update.h"
#include "runtime/train/zero_adamw_update.h"

namespace strata {
namespace {

// The stage family `options` ask for (fo_update.h).
absl::StatusOr<std::unique_ptr<FoUpdate>> MakeFoUpdate(Transformer* model,
                                                       const FoTrainerOptions& options) {
  const AdamWConfig adam{options.beta1, options.beta2, options.adam_eps, options.weight_decay};
  if (options.adapters != nullptr) {
    // Adapters (LoRA, prefix) and their state are small: replicated on every rank, in memory.
    if (options.zero_stage != 0) {
      return absl::InvalidArgumentError(
          "LoRA trains replicated adapters: ZeRO stages 1-3 partition nothing of them; use stage "
          "0");
    }
    if (!options.optimizer_state_dirs.empty() || !options.param_offload_dirs.empty() ||
        options.bf16_compute || options.init_seed.has_value()) {
      return absl::InvalidArgumentError(
          "adapters and their AdamW state stay in memory: no offload, bf16 compute copy "
          "or per-shard initialization");
    }
    return std::make_unique<AdapterAdamWUpdate>(*model, options.adapters, options.comm, adam,
                                                options.grad_clip);
  }
  if (options.zero_stage == 3) {
    Zero3::Options zero;
    zero.adam = adam;
    zero.grad_clip = options.grad_clip;
    zero.offload_params = !options.param_offload_dirs.empty();
    zero.offload_state = !options.optimizer_state_dirs.empty();
    zero.bf16_compute = options.bf16_compute;
    if (zero.offload_params && zero.offload_state &&
        options.param_offload_dirs != options.optimizer_state_dirs) {
      return absl::InvalidArgumentError(
          "at ZeRO stage 3 the weight shard and the AdamW state are offloaded to the same "
          "directories: give the same list for both");
    }
    zero.nvme_paths =
        zero.offload_params ? options.param_offload_dirs : options.optimizer_state_dirs;
    std::unique_ptr<Zero3> zero3;
    if (options.init_seed.has_value()) {
      const uint64_t seed = *options.init_seed;
      STRATA_ASSIGN_OR_RETURN(zero3,
                              Zero3::Create(model->layout(), options.comm, zero,
                                            [model, seed](int64_t begin, int64_t end, float* out) {
                                              model->InitializeRange(seed, begin, end, out);
                                              return absl::OkStatus();
                                            }));
    } else {
      STRATA_ASSIGN_OR_RETURN(zero3,
                              Zero3::Create(model->layout(), options.comm, zero, model->params()));
    }
    model->ReleaseBlockWeights();  // Each rank keeps only its shard of the blocks.
    return std::make_unique<Zero3Update>(std::move(zero3), 3, options.bf16_compute);
  }
  if (!options.param_offload_dirs.empty() || options.bf16_compute) {
    return absl::InvalidArgumentError(
        "offloading the weights and the bf16 compute copy need ZeRO stage 3");
  }
  if (options.zero_stage == 2) {
    // Gradients and AdamW state partitioned, the weights whole in the model's arena.
    Zero3::Options zero;
    zero.adam = adam;
    zero.grad_clip = options.grad_clip;
    zero.offload_state = !options.optimizer_state_dirs.empty();
    zero.nvme_paths = options.optimizer_state_dirs;
    STRATA_ASSIGN_OR_RETURN(
        std::unique_ptr<Zero3> zero3,
        Zero3::CreateReplicated(model->layout(), options.comm, zero, model->params()));
    return std::make_unique<Zero3Update>(std::move(zero3), 2, false);
  }
  if (options.comm != nullptr || !options.optimizer_state_dirs.empty()) {
    ZeroAdamW::Options zero;
    zero.state_nvme_paths = options.optimizer_state_dirs;
    zero.stage = options.zero_stage;
    zero.adam = adam;
    zero.grad_clip = options.grad_clip;
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<ZeroAdamW> zero_adamw,
                            ZeroAdamW::Create(model->layout(), options.comm, zero));
    return std::make_unique<ZeroAdamWUpdate>(std::move(zero_adamw));
  }
  return std::make_unique<LocalAdamWUpdate>(model->layout(), adam, options.grad_clip);
}

}  // namespace

absl::StatusOr<std::unique_ptr<FoTrainer>> FoTrainer::Create(Transformer* model,
                                                             const TokenCorpus* train,
                                                             const TokenCorpus* eval,
                                                             FoTrainerOptions options) {
  if (options.steps <= 0) return absl::InvalidArgumentError("steps must be positive");
  if (options.lr.total_steps == 0) options.lr.total_steps = options.steps;
  STRATA_RETURN_IF_ERROR(options.lr.Validate());
  const int world_size = options.comm != nullptr ? options.comm->size() : 1;
  if (options.keep_checkpoints < (world_size > 1 ? 2 : 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "keep_checkpoints must be at least ", world_size > 1 ? 2 : 1,
        world_size > 1 ? " with several ranks (the newest common step must survive)" : ""));
  }
  STRATA_RETURN_IF_ERROR(CheckSequenceFits(model->config(), options.seq, options.adapters));
  const int rank = options.comm != nullptr ? options.comm->rank() : 0;
  const int world = options.comm != nullptr ? options.comm->size() : 1;
  STRATA_ASSIGN_OR_RETURN(
      TrainBatches batches,
      TrainBatches::Create(train, options.task,
                           {options.batch, options.seq, options.seed, rank, world}));
  if (eval != nullptr && options.task == nullptr) {
    BatchSampler::Options eval_options{options.batch, options.seq, options.seed, 0, 1};
    STRATA_RETURN_IF_ERROR(BatchSampler::Create(eval, eval_options).status());
  }
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<FoUpdate> update, MakeFoUpdate(model, options));
  return std::unique_ptr<FoTrainer>(
      new FoTrainer(model, eval, options, std::move(batches), std::move(update)));
}

FoTrainer::FoTrainer(Transformer* model, const TokenCorpus* eval, FoTrainerOptions options,
                     TrainBatches batches, std::unique_ptr<FoUpdate> update)
    : model_(model),
      eval_(eval),
      options_(options),
      batches_(std::move(batches)),
      update_(std::move(update)) {}

absl::StatusOr<StepStats> FoTrainer::Step() {
  const auto start = std::chrono::steady_clock::now();
  STRATA_RETURN_IF_ERROR(batches_.Next());
  update_->BeginStep(*model_);
  ObjectiveScope objective(model_, batches_.objective());
  STRATA_ASSIGN_OR_RETURN(float loss, model_->ForwardBackward(batches_.tokens(), batches_.targets(),
                                                              batches_.rows(), batches_.T(),
                                                              update_->weight_source()));
  StepStats stats;
  stats.lr = static_cast<float>(options_.lr.At(step_));
  STRATA_ASSIGN_OR_RETURN(stats.grad_norm, update_->Step(*model_, stats.lr));
  if (options_.comm != nullptr) {
    // Report the mean loss over the ranks' batches (the loss of the global batch).
    float global = loss;
    STRATA_RETURN_IF_ERROR(options_.comm->AllReduceSum(absl::MakeSpan(&global, 1)));
    loss = global / static_cast<float>(options_.comm->size());
  }
  ++step_;
  stats.step = step_;
  stats.loss = loss;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stats.tokens_per_second = static_cast<double>(batches_.tokens().size()) / seconds;
  return stats;
}

absl::StatusOr<EvalResult> FoTrainer::Evaluate() {
  if (!has_eval()) return absl::FailedPreconditionError("no evaluation data");
  // Batches of the global size, so data-parallel ranks evaluate exactly what one process with
  // the whole batch would (each rank the whole set: the weights are the same everywhere).
  const int batch = options_.batch * (options_.comm != nullptr ? options_.comm->size() : 1);
  return EvaluateHeldOut(
      eval_, options_.task, model_,
      [&](absl::Span<const int32_t> x, absl::Span<const int32_t> y, int B, int T) {
        return update_->Loss(*model_, x, y, B, T);
      },
      batch, options_.seq, options_.eval_batches,
      /*generate=*/options_.zero_stage < 3 && options_.param_offload_dirs.empty());
}

std::string FoRankCheckpointDir(const std::string& checkpoint_dir, int rank) {
  return absl::StrCat(checkpoint_dir, "/rank", rank);
}

absl::Status FoTrainer::ClaimCheckpointDir() {
  if (options_.attempt == 0 || fence_.has_value()) return absl::OkStatus();
  STRATA_ASSIGN_OR_RETURN(AttemptFence fence, AttemptFence::Claim(OwnCheckpointDir(),
                                                                  options_.job_id,
                                                                  options_.attempt));
  fence_.emplace(std::move(fence));
  return absl::OkStatus();
}

absl::Status FoTrainer::SaveCheckpoint() {
  if (options_.checkpoint_dir.empty()) return absl::OkStatus();
  if (checkpoints_ == nullptr) {
    STRATA_ASSIGN_OR_RETURN(
        checkpoints_, CheckpointManager::Create({OwnCheckpointDir(), options_.keep_checkpoints}));
  }
  STRATA_RETURN_IF_ERROR(ClaimCheckpointDir());
  // Held to the end of this write: no newer attempt claims the directory meanwhile.
  STRATA_ASSIGN_OR_RETURN(const std::optional<AttemptFence::Hold> hold,
                          AttemptFence::CheckIfAny(fence_));
  STRATA_ASSIGN_OR_RETURN(CheckpointManager::Writer writer, checkpoints_->Begin(step_));
  STRATA_RETURN_IF_ERROR(update_->Save(writer.dir(), *model_, rank()));
  nlohmann::json position;
  position["step"] = step_;
  position["sampler_epoch"] = batches_.position().epoch;
  position["sampler_cursor"] = batches_.position().cursor;
  position["world_size"] = options_.comm != nullptr ? options_.comm->size() : 1;
  position["zero_stage"] = options_.zero_stage;
  STRATA_RETURN_IF_ERROR(writer.Commit(position));
  if (options_.events.on_checkpoint && rank() == 0) {
    options_.events.on_checkpoint(step_, writer.final_dir());
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> FoTrainer::Resume(const std::function<void(const std::string&)>& log) {
  resumed_ = true;
  if (options_.checkpoint_dir.empty()) return step_;
  STRATA_ASSIGN_OR_RETURN(
      checkpoints_, CheckpointManager::Create({OwnCheckpointDir(), options_.keep_checkpoints}));
  STRATA_RETURN_IF_ERROR(ClaimCheckpointDir());
  std::vector<std::string> problems;
  absl::StatusOr<CheckpointInfoOnDisk> latest = checkpoints_->LatestValid(&problems);
  for (const std::string& problem : problems) log("skipping checkpoint: " + problem);
  if (!latest.ok() && !absl::IsNotFound(latest.status())) return latest.status();
  // The newest step every rank has: a crash may have stopped ranks between their commits.
  float mine = latest.ok() ? static_cast<float>(latest->step) : 0.0f;
  float common = mine;
  if (options_.comm != nullptr && options_.comm->size() > 1) {
    std::vector<float> all(options_.comm->size());
    STRATA_RETURN_IF_ERROR(
        options_.comm->AllGather(absl::MakeConstSpan(&mine, 1), absl::MakeSpan(all)));
    common = *std::min_element(all.begin(), all.end());
  }
  const int64_t step = static_cast<int64_t>(common);
  if (step == 0) return step_;
  const std::string name = absl::StrFormat("ckpt-%010d", step);
  STRATA_ASSIGN_OR_RETURN(CheckpointInfoOnDisk own,
                          CheckpointManager::Verify(absl::StrCat(OwnCheckpointDir(), "/", name)));
  if (own.position.value("world_size", 1) !=
          (options_.comm != nullptr ? options_.comm->size() : 1) ||
      own.position.value("zero_stage", 0) != options_.zero_stage) {
    return absl::FailedPreconditionError(
        absl::StrCat(own.dir,
                     " was written with a different world size or ZeRO stage; start a new "
                     "checkpoint directory"));
  }
  STRATA_RETURN_IF_ERROR(update_->Load(
      own.dir, absl::StrCat(FoRankCheckpointDir(options_.checkpoint_dir, 0), "/", name), *model_,
      step));
  step_ = step;
  batches_.set_position({own.position.value("sampler_epoch", int64_t{0}),
                         own.position.value("sampler_cursor", int64_t{0})});
  log(absl::StrFormat("resumed from %s: at step %d", own.dir, step_));
  return step_;
}

absl::Status FoTrainer::Run(const std::function<void(const std::string&)>& log) {
  if (!resumed_) STRATA_RETURN_IF_ERROR(Resume(log).status());
  if (const std::string where = update_->Describe(); !where.empty()) log(where);
  double tokens_per_second = 0;
  while (step_ < options_.steps) {
    STRATA_ASSIGN_OR_RETURN(StepStats s, Step());
    if (options_.checkpoint_every > 0 && s.step % options_.checkpoint_every == 0) {
      STRATA_RETURN_IF_ERROR(SaveCheckpoint());
    }
    bool stop = options_.stop_requested && options_.stop_requested();
    if (options_.comm != nullptr && options_.comm->size() > 1 && options_.stop_requested) {
      // All ranks stop after the same step, or the ones going on would wait for the others.
      float any = stop ? 1.0f : 0.0f;
      STRATA_RETURN_IF_ERROR(options_.comm->AllReduceSum(absl::MakeSpan(&any, 1)));
      stop = any > 0;
    }
    if (stop && step_ < options_.steps) {
      STRATA_RETURN_IF_ERROR(SaveCheckpoint());
      log(absl::StrFormat("stopped at step %d/%d on request%s", step_, options_.steps,
                          options_.checkpoint_dir.empty() ? "" : "; checkpointed"));
      return absl::CancelledError(absl::StrCat("stopped at step ", step_));
    }
    tokens_per_second = s.tokens_per_second;
    if (options_.log_every > 0 &&
        (s.step % options_.log_every == 0 || s.step == 1 || s.step == options_.steps)) {
      log(absl::StrFormat("step %d/%d | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s", s.step,
                          options_.steps, s.loss, s.lr, s.grad_norm, s.tokens_per_second));
      if (options_.events.on_progress) {
        TrainProgress p;
        p.step = s.step;
        p.max_steps = options_.steps;
        p.loss = s.loss;
        p.lr = s.lr;
        const int ranks = options_.comm != nullptr ? options_.comm->size() : 1;  // In lockstep.
        p.tokens_per_second = s.tokens_per_second * ranks;
        p.tokens_total = s.step * static_cast<int64_t>(batches_.tokens().size()) * ranks;
        options_.events.on_progress(p);
      }
    }
    if (has_eval() && options_.eval_every > 0 && s.step % options_.eval_every == 0 &&
        s.step < options_.steps) {
      STRATA_ASSIGN_OR_RETURN(const EvalResult eval, Evaluate());
      log(absl::StrFormat("step %d | %s", s.step, DescribeEval(eval)));
      if (options_.events.on_eval) options_.events.on_eval(s.step, eval);
    }
  }
  if (has_eval()) {
    STRATA_ASSIGN_OR_RETURN(const EvalResult eval, Evaluate());
    log(absl::StrFormat("final %s after %d steps (%.0f tok/s)", DescribeEval(eval), step_,
                        tokens_per_second));
    if (options_.events.on_eval) options_.events.on_eval(step_, eval);
  }
  if (options_.checkpoint_every == 0 || step_ % options_.checkpoint_every != 0) {
    STRATA_RETURN_IF_ERROR(SaveCheckpoint());  // The end.
  }
  if (!options_.save_dir.empty()) {
    STRATA_RETURN_IF_ERROR(update_->GatherForExport(*model_));
    if (rank() == 0) {
      STRATA_RETURN_IF_ERROR(update_->Export(*model_, options_.save_dir));
      log(absl::StrFormat("saved %s", options_.save_dir));
    }
    update_->ExportDone(*model_);
  }
  return absl::OkStatus();
}

}  // namespace strata
