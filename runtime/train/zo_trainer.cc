// See zo_trainer.h.
#include "runtime/train/zo_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status_macros.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/peft/peft_checkpoint.h"
#include "runtime/peft/zo_adapters.h"
#include "runtime/zo/in_memory_zo.h"
#include "storage/checkpoint.h"
#include "storage/safetensors/safetensors.h"

namespace strata {

absl::StatusOr<std::unique_ptr<ZoTrainer>> ZoTrainer::Create(Transformer* model,
                                                             const TokenCorpus* train,
                                                             const TokenCorpus* eval,
                                                             ZoTrainerOptions options) {
  if (options.steps <= 0) return absl::InvalidArgumentError("steps must be positive");
  if (options.lr.total_steps == 0) options.lr.total_steps = options.steps;
  STRATA_RETURN_IF_ERROR(options.lr.Validate());
  if (options.keep_checkpoints < 1) {
    return absl::InvalidArgumentError("keep_checkpoints must be at least 1");
  }
  STRATA_RETURN_IF_ERROR(CheckSequenceFits(model->config(), options.seq, options.adapters));
  if (options.offload.has_value() && options.zo.variant != zo::ZoVariant::kSgd &&
      options.zo.variant != zo::ZoVariant::kSign) {
    return absl::InvalidArgumentError("offloaded ZO supports the sgd and sign variants");
  }
  STRATA_ASSIGN_OR_RETURN(
      TrainBatches batches,
      TrainBatches::Create(train, options.task, {options.batch, options.seq, options.data_seed}));
  std::unique_ptr<zo::ZoEngine> engine;
  if (options.adapters != nullptr && options.offload.has_value()) {
    options.offload->adapters = options.adapters;  // ZO over the offloaded, read-only base.
  } else if (options.adapters != nullptr) {
    STRATA_ASSIGN_OR_RETURN(engine, ZoAdapters::Create(model, options.adapters, options.zo));
  } else if (!options.offload.has_value()) {
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<zo::ZoOptimizer> optimizer,
                            zo::ZoOptimizer::Create(model, options.zo));
    engine = std::make_unique<zo::InMemoryZo>(model, std::move(optimizer));
  }
  return std::unique_ptr<ZoTrainer>(
      new ZoTrainer(model, eval, options, std::move(batches), std::move(engine)));
}

ZoTrainer::ZoTrainer(Transformer* model, const TokenCorpus* eval, ZoTrainerOptions options,
                     TrainBatches batches, std::unique_ptr<zo::ZoEngine> engine)
    : model_(model),
      eval_(eval),
      options_(std::move(options)),
      batches_(std::move(batches)),
      engine_(std::move(engine)) {}

double ZoTrainer::LrAt(int64_t step) const { return options_.lr.At(step); }

absl::Status ZoTrainer::EnsureEngine() {
  if (engine_ != nullptr) return absl::OkStatus();
  STRATA_ASSIGN_OR_RETURN(engine_, OffloadedZo::Create(model_, options_.zo, *options_.offload));
  return absl::OkStatus();
}

absl::Status ZoTrainer::FlushPending() {
  // No engine yet: nothing has stepped, the arena holds the weights.
  return engine_ != nullptr ? engine_->Flush() : absl::OkStatus();
}

absl::Status ZoTrainer::ExportHf(const std::string& dir) {
  STRATA_RETURN_IF_ERROR(FlushPending());
  if (options_.adapters != nullptr) return SaveAdapters(*options_.adapters, model_->config(), dir);
  HfSaveOptions save;
  // Offloaded: straight from the tier, one block at a time, within the budget.
  if (engine_ != nullptr) save.block_source = engine_->block_source();
  return SaveHfCheckpoint(*model_, dir, save);
}

absl::Status ZoTrainer::SaveCheckpoint() {
  if (checkpoints_ == nullptr) return absl::OkStatus();
  // Held to the end of this write: no newer attempt claims the directory meanwhile.
  STRATA_ASSIGN_OR_RETURN(const std::optional<AttemptFence::Hold> hold,
                          AttemptFence::CheckIfAny(fence_));
  STRATA_ASSIGN_OR_RETURN(CheckpointManager::Writer writer, checkpoints_->Begin(step_));
  STRATA_RETURN_IF_ERROR(ExportHf(writer.dir()));
  zo::ZoOptimizer* arithmetic = engine_->arithmetic();
  if (arithmetic != nullptr) {
    std::vector<SafetensorsTensorView> tensors;
    const std::vector<float>& thresholds = arithmetic->thresholds();
    tensors.push_back({"thresholds", {static_cast<int64_t>(thresholds.size())}, thresholds.data()});
    if (!arithmetic->m().empty()) {
      tensors.push_back(
          {"m", {static_cast<int64_t>(arithmetic->m().size())}, arithmetic->m().data()});
    }
    if (!arithmetic->v().empty()) {
      tensors.push_back(
          {"v", {static_cast<int64_t>(arithmetic->v().size())}, arithmetic->v().data()});
    }
    STRATA_RETURN_IF_ERROR(
        WriteSafetensors(absl::StrCat(writer.dir(), "/zo_state.safetensors"), tensors, {}));
  }
  nlohmann::json position;
  position["step"] = step_;
  position["sampler_epoch"] = batches_.position().epoch;
  position["sampler_cursor"] = batches_.position().cursor;
  position["adam_updates"] = arithmetic != nullptr ? arithmetic->adam_updates() : 0;
  position["seed"] = options_.zo.seed;
  STRATA_RETURN_IF_ERROR(writer.Commit(position));
  checkpointed_step_ = step_;
  if (options_.events.on_checkpoint) options_.events.on_checkpoint(step_, writer.final_dir());
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ZoTrainer::Resume(const Log& log) {
  if (options_.checkpoint_dir.empty()) {
    STRATA_RETURN_IF_ERROR(EnsureEngine());
    return step_;
  }
  const std::string& dir = options_.checkpoint_dir;
  STRATA_ASSIGN_OR_RETURN(checkpoints_,
                          CheckpointManager::Create({dir, options_.keep_checkpoints}));
  if (options_.attempt > 0) {  // Before the step log is opened (it may cut a torn tail).
    STRATA_ASSIGN_OR_RETURN(AttemptFence fence,
                            AttemptFence::Claim(dir, options_.job_id, options_.attempt));
    fence_.emplace(std::move(fence));
  }
  STRATA_ASSIGN_OR_RETURN(log_, zo::StepLogWriter::Open(absl::StrCat(dir, "/steplog.bin"),
                                                        options_.zo.num_perturbations));
  if (log_->torn_tail_bytes() > 0) {
    log(absl::StrFormat("step log: cut a torn last record (%d bytes)", log_->torn_tail_bytes()));
  }
  std::vector<std::string> problems;
  absl::StatusOr<CheckpointInfoOnDisk> latest = checkpoints_->LatestValid(&problems);
  for (const std::string& problem : problems) log("skipping checkpoint: " + problem);
  if (absl::IsNotFound(latest.status())) {
    if (!log_->existing().empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          dir,
          " has a step log but no valid checkpoint to replay it from; remove it to start "
          "over"));
    }
    STRATA_RETURN_IF_ERROR(EnsureEngine());  // First: it may build the weights on NVMe.
    STRATA_RETURN_IF_ERROR(SaveCheckpoint());
    if (!options_.replay_log.empty()) STRATA_RETURN_IF_ERROR(ReplayFromStart(log));
    return step_;
  }
  if (!latest.ok()) return latest.status();
  if (options_.adapters != nullptr) {
    // The base is the job's; the checkpoint holds the adapters.
    STRATA_RETURN_IF_ERROR(LoadAdapterWeights(latest->dir, model_->layout(), *options_.adapters));
  } else if (engine_ == nullptr && options_.zo.sparse_quantile == 0) {
    // Straight from the checkpoint onto NVMe, block by block: the model never occupies RAM.
    STRATA_ASSIGN_OR_RETURN(HfWeightsReader reader, HfWeightsReader::Open(latest->dir, *model_));
    OffloadedZo::Options streamed = *options_.offload;
    streamed.init_seed.reset();
    streamed.load_tensor = [&reader](int id, float* out) { return reader.Read(id, out); };
    STRATA_ASSIGN_OR_RETURN(engine_, OffloadedZo::Create(model_, options_.zo, streamed));
  } else {
    STRATA_RETURN_IF_ERROR(LoadHfWeights(latest->dir, *model_));
  }
  const nlohmann::json& state = latest->position;
  if (!state.contains("step") || !state.contains("sampler_epoch") ||
      !state.contains("sampler_cursor")) {
    return absl::DataLossError(absl::StrCat(latest->dir, ": manifest lacks the ZO position"));
  }
  step_ = state["step"].get<int64_t>();
  batches_.set_position(
      {state["sampler_epoch"].get<int64_t>(), state["sampler_cursor"].get<int64_t>()});
  STRATA_RETURN_IF_ERROR(EnsureEngine());  // Moves loaded blocks to NVMe (sparse thresholds).
  const std::string ckpt = latest->dir;
  if (zo::ZoOptimizer* arithmetic = engine_->arithmetic(); arithmetic != nullptr) {
    STRATA_RETURN_IF_ERROR(RestoreArithmetic(ckpt, state, *arithmetic));
  }
  int64_t replayed = 0;
  for (const zo::ZoStepRecord& record : log_->existing()) {
    if (record.step <= step_) continue;
    STRATA_RETURN_IF_ERROR(ReplayNext(record, "step log"));
    ++replayed;
  }
  log(absl::StrFormat("resumed from %s and replayed %d logged steps: at step %d", ckpt, replayed,
                      step_));
  // The local log may hold steps whoever keeps the job's log has not got (a rank stopped before
  // its last records were sent): hand them on, so that log has no gap. Steps the replay log
  // given to this run already holds are not sent again.
  if (options_.on_step) {
    int64_t known = 0;
    if (!options_.replay_log.empty()) {
      STRATA_ASSIGN_OR_RETURN(zo::StepLogContents given,
                              zo::ReadStepLog(options_.replay_log, options_.zo.num_perturbations));
      if (!given.records.empty()) known = given.records.back().step;
    }
    for (const zo::ZoStepRecord& record : log_->existing()) {
      if (record.step > known) options_.on_step(record);
    }
  }
  return step_;
}

absl::Status ZoTrainer::RestoreArithmetic(const std::string& ckpt, const nlohmann::json& state,
                                          zo::ZoOptimizer& arithmetic) {
  arithmetic.set_adam_updates(state.value("adam_updates", int64_t{0}));
  STRATA_ASSIGN_OR_RETURN(SafetensorsFile extra,
                          SafetensorsFile::Open(absl::StrCat(ckpt, "/zo_state.safetensors")));
  std::vector<float> thresholds(model_->layout().tensors().size());
  const SafetensorsEntry* entry = extra.header().Find("thresholds");
  if (entry == nullptr || entry->numel() != static_cast<int64_t>(thresholds.size())) {
    return absl::DataLossError(absl::StrCat(ckpt, "/zo_state.safetensors: bad thresholds"));
  }
  STRATA_RETURN_IF_ERROR(extra.ReadF32(*entry, thresholds.data()));
  arithmetic.set_thresholds(std::move(thresholds));
  for (auto [name, span] : {std::pair{"m", arithmetic.m()}, std::pair{"v", arithmetic.v()}}) {
    if (span.empty()) continue;
    const SafetensorsEntry* e = extra.header().Find(name);
    if (e == nullptr || e->numel() != static_cast<int64_t>(span.size())) {
      return absl::DataLossError(absl::StrCat(ckpt, "/zo_state.safetensors: missing ", name));
    }
    STRATA_RETURN_IF_ERROR(extra.ReadF32(*e, span.data()));
  }
  return absl::OkStatus();
}

absl::Status ZoTrainer::ReplayNext(const zo::ZoStepRecord& record, const std::string& source) {
  if (record.step != step_ + 1) {
    return absl::DataLossError(
        absl::StrCat(source, ": step log jumps from step ", step_, " to ", record.step));
  }
  STRATA_RETURN_IF_ERROR(engine_->Replay(record));
  STRATA_RETURN_IF_ERROR(batches_.Next());  // Keep data in step.
  step_ = record.step;
  return absl::OkStatus();
}

absl::Status ZoTrainer::ReplayFromStart(const Log& log) {
  STRATA_ASSIGN_OR_RETURN(zo::StepLogContents contents,
                          zo::ReadStepLog(options_.replay_log, options_.zo.num_perturbations));
  // Held to the end of this write: no newer attempt claims the directory meanwhile.
  STRATA_ASSIGN_OR_RETURN(const std::optional<AttemptFence::Hold> hold,
                          AttemptFence::CheckIfAny(fence_));
  for (const zo::ZoStepRecord& record : contents.records) {
    if (record.step == step_ + 1) STRATA_RETURN_IF_ERROR(log_->Append(record, /*sync=*/false));
    STRATA_RETURN_IF_ERROR(ReplayNext(record, options_.replay_log));
  }
  STRATA_RETURN_IF_ERROR(log_->Sync());
  log(absl::StrFormat("replayed %d steps of %s from the initial weights: at step %d",
                      contents.records.size(), options_.replay_log, step_));
  return absl::OkStatus();
}

absl::StatusOr<zo::ZoStepRecord> ZoTrainer::Step() {
  STRATA_RETURN_IF_ERROR(batches_.Next());
  const int64_t next = step_ + 1;
  STRATA_RETURN_IF_ERROR(EnsureEngine());
  ObjectiveScope objective(model_, batches_.objective());
  STRATA_ASSIGN_OR_RETURN(zo::ZoStepRecord record,
                          engine_->Step(batches_.tokens(), batches_.targets(), batches_.rows(),
                                        batches_.T(), next, LrAt(step_)));
  tokens_total_ += static_cast<int64_t>(batches_.tokens().size());
  // Held to the end of this write: no newer attempt claims the directory meanwhile.
  STRATA_ASSIGN_OR_RETURN(const std::optional<AttemptFence::Hold> hold,
                          AttemptFence::CheckIfAny(fence_));
  if (log_ != nullptr) STRATA_RETURN_IF_ERROR(log_->Append(record, /*sync=*/true));
  step_ = next;
  if (options_.on_step) options_.on_step(record);
  return record;
}

absl::StatusOr<EvalResult> ZoTrainer::Evaluate() {
  if (!has_eval()) return absl::FailedPreconditionError("no evaluation data");
  STRATA_RETURN_IF_ERROR(FlushPending());
  return EvaluateHeldOut(
      eval_, options_.task, model_,
      [&](absl::Span<const int32_t> x, absl::Span<const int32_t> y, int B,
          int T) -> absl::StatusOr<float> {
        // Offloaded: the blocks stream through the working set (one read pass per batch)
        // instead of coming back into RAM.
        if (engine_ != nullptr) return engine_->Loss(x, y, B, T);
        return model_->Loss(x, y, B, T);
      },
      options_.batch, options_.seq, options_.eval_batches,
      /*generate=*/!options_.offload.has_value());
}

absl::Status ZoTrainer::Run(const Log& log) {
  STRATA_RETURN_IF_ERROR(Resume(log).status());
  const auto start = std::chrono::steady_clock::now();
  const int64_t first = step_;
  while (step_ < options_.steps) {
    STRATA_ASSIGN_OR_RETURN(zo::ZoStepRecord r, Step());
    if (options_.log_every > 0 &&
        (r.step % options_.log_every == 0 || r.step == first + 1 || r.step == options_.steps)) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const std::string io =
          !options_.offload.has_value()
              ? ""
              : absl::StrFormat(" | io r %.1f MB w %.1f MB", engine_->bytes_read() / 1e6,
                                engine_->bytes_written() / 1e6);
      const double tokens_per_second = static_cast<double>(tokens_total_) / seconds;
      log(absl::StrFormat("step %d/%d | loss %.4f | g %+.4e | lr %.2e%s%s | %.0f tok/s", r.step,
                          options_.steps, r.loss, r.scalars[0], r.lr, r.skipped ? " | skipped" : "",
                          io, tokens_per_second));
      if (options_.events.on_progress) {
        TrainProgress p;
        p.step = r.step;
        p.max_steps = options_.steps;
        p.loss = r.loss;
        p.lr = r.lr;
        p.tokens_per_second = tokens_per_second;
        p.tokens_total = r.step * static_cast<int64_t>(batches_.tokens().size());
        p.offload_read_bytes = engine_->bytes_read();
        p.offload_write_bytes = engine_->bytes_written();
        options_.events.on_progress(p);
      }
    }
    if (has_eval() && options_.eval_every > 0 && r.step % options_.eval_every == 0) {
      STRATA_ASSIGN_OR_RETURN(const EvalResult eval, Evaluate());
      log(absl::StrFormat("step %d | %s", r.step, DescribeEval(eval)));
      if (options_.events.on_eval) options_.events.on_eval(r.step, eval);
    }
    if (options_.checkpoint_every > 0 && r.step % options_.checkpoint_every == 0) {
      STRATA_RETURN_IF_ERROR(SaveCheckpoint());
    }
    if (options_.stop_requested && options_.stop_requested() && step_ < options_.steps) {
      STRATA_RETURN_IF_ERROR(FlushPending());
      STRATA_RETURN_IF_ERROR(SaveCheckpoint());
      log(absl::StrFormat("stopped at step %d/%d on request%s", step_, options_.steps,
                          options_.checkpoint_dir.empty() ? "" : "; checkpointed"));
      return absl::CancelledError(absl::StrCat("stopped at step ", step_));
    }
  }
  STRATA_RETURN_IF_ERROR(FlushPending());
  if (checkpointed_step_ != step_) STRATA_RETURN_IF_ERROR(SaveCheckpoint());  // The end.
  if (has_eval()) {
    STRATA_ASSIGN_OR_RETURN(const EvalResult eval, Evaluate());
    log(absl::StrFormat("final %s after %d steps", DescribeEval(eval), step_));
    if (options_.events.on_eval) options_.events.on_eval(step_, eval);
  }
  return absl::OkStatus();
}

}  // namespace strata
