// See fo_trainer.h.
#include "runtime/train/fo_trainer.h"

#include <chrono>

#include "absl/strings/str_format.h"
#include "runtime/base/status_macros.h"
#include "runtime/model/hf_checkpoint.h"

namespace strata {

absl::StatusOr<std::unique_ptr<FoTrainer>> FoTrainer::Create(Transformer* model,
                                                             const TokenCorpus* train,
                                                             const TokenCorpus* eval,
                                                             FoTrainerOptions options) {
  if (options.steps <= 0) return absl::InvalidArgumentError("steps must be positive");
  if (!(options.lr > 0)) return absl::InvalidArgumentError("lr must be positive");
  if (options.seq > model->config().max_seq_len) {
    return absl::InvalidArgumentError(
        absl::StrFormat("seq %d exceeds the model's maximum sequence length %d", options.seq,
                        model->config().max_seq_len));
  }
  const int rank = options.comm != nullptr ? options.comm->rank() : 0;
  const int world = options.comm != nullptr ? options.comm->size() : 1;
  BatchSampler::Options sampler_options{options.batch, options.seq, options.seed, rank, world};
  STRATA_ASSIGN_OR_RETURN(BatchSampler sampler, BatchSampler::Create(train, sampler_options));
  if (eval != nullptr) {
    BatchSampler::Options eval_options{options.batch, options.seq, options.seed, 0, 1};
    STRATA_RETURN_IF_ERROR(BatchSampler::Create(eval, eval_options).status());
  }
  std::unique_ptr<FoTrainer> trainer(new FoTrainer(model, eval, options, std::move(sampler)));
  if (options.comm != nullptr) {
    ZeroAdamW::Options zero;
    zero.stage = options.zero_stage;
    zero.adam = AdamWConfig{options.beta1, options.beta2, 1e-8f, options.weight_decay};
    zero.grad_clip = options.grad_clip;
    STRATA_ASSIGN_OR_RETURN(trainer->zero_, ZeroAdamW::Create(model->layout(), options.comm, zero));
  }
  return trainer;
}

FoTrainer::FoTrainer(Transformer* model, const TokenCorpus* eval, FoTrainerOptions options,
                     BatchSampler sampler)
    : model_(model),
      eval_(eval),
      options_(options),
      sampler_(std::move(sampler)),
      adamw_(model->layout(),
             AdamWConfig{options.beta1, options.beta2, 1e-8f, options.weight_decay}),
      tokens_(static_cast<size_t>(options.batch) * options.seq),
      targets_(tokens_.size()) {}

absl::StatusOr<StepStats> FoTrainer::Step() {
  const auto start = std::chrono::steady_clock::now();
  sampler_.Next(absl::MakeSpan(tokens_), absl::MakeSpan(targets_));
  model_->ZeroGrads();
  STRATA_ASSIGN_OR_RETURN(float loss,
                          model_->ForwardBackward(tokens_, targets_, options_.batch, options_.seq));
  StepStats stats;
  stats.lr = WarmupCosineLr(step_, options_.warmup, options_.steps, options_.lr, options_.min_lr);
  if (zero_ != nullptr) {
    STRATA_ASSIGN_OR_RETURN(stats.grad_norm,
                            zero_->Step(model_->params(), model_->grads(), stats.lr));
    // Report the mean loss over the ranks' batches (the loss of the global batch).
    float global = loss;
    STRATA_RETURN_IF_ERROR(options_.comm->AllReduceSum(absl::MakeSpan(&global, 1)));
    loss = global / static_cast<float>(options_.comm->size());
  } else {
    stats.grad_norm = ClipGradNorm(model_->grads(), options_.grad_clip);
    adamw_.Step(model_->params(), model_->grads(), stats.lr);
  }
  ++step_;
  stats.step = step_;
  stats.loss = loss;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stats.tokens_per_second = static_cast<double>(tokens_.size()) / seconds;
  return stats;
}

absl::StatusOr<float> FoTrainer::Evaluate() {
  if (eval_ == nullptr) return absl::FailedPreconditionError("no evaluation data");
  // Batches of the global size, so data-parallel ranks evaluate exactly what one process with
  // the whole batch would (each rank the whole set: the weights are the same everywhere).
  const int batch = options_.batch * (options_.comm != nullptr ? options_.comm->size() : 1);
  return MeanLossOverBatches(eval_, batch, options_.seq, options_.eval_batches,
                             [&](absl::Span<const int32_t> x, absl::Span<const int32_t> y) {
                               return model_->Loss(x, y, batch, options_.seq);
                             });
}

absl::Status FoTrainer::Run(const std::function<void(const std::string&)>& log) {
  double tokens_per_second = 0;
  while (step_ < options_.steps) {
    STRATA_ASSIGN_OR_RETURN(StepStats s, Step());
    tokens_per_second = s.tokens_per_second;
    if (options_.log_every > 0 && (s.step % options_.log_every == 0 || s.step == 1)) {
      log(absl::StrFormat("step %d/%d | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s", s.step,
                          options_.steps, s.loss, s.lr, s.grad_norm, s.tokens_per_second));
    }
    if (eval_ != nullptr && options_.eval_every > 0 && s.step % options_.eval_every == 0 &&
        s.step < options_.steps) {
      STRATA_ASSIGN_OR_RETURN(float eval_loss, Evaluate());
      log(absl::StrFormat("step %d | eval loss %.4f", s.step, eval_loss));
    }
  }
  if (eval_ != nullptr) {
    STRATA_ASSIGN_OR_RETURN(float eval_loss, Evaluate());
    log(absl::StrFormat("final eval loss %.4f after %d steps (%.0f tok/s)", eval_loss, step_,
                        tokens_per_second));
  }
  if (!options_.save_dir.empty() && (options_.comm == nullptr || options_.comm->rank() == 0)) {
    STRATA_RETURN_IF_ERROR(SaveHfCheckpoint(*model_, options_.save_dir));
    log(absl::StrFormat("saved %s", options_.save_dir));
  }
  return absl::OkStatus();
}

}  // namespace strata
