// See train_batches.h.
#include "runtime/train/train_batches.h"

#include "absl/strings/str_format.h"
#include "runtime/base/status_macros.h"
#include "runtime/generate/generator.h"

namespace strata {

absl::StatusOr<TrainBatches> TrainBatches::Create(const TokenCorpus* corpus,
                                                  const task::TaskData* task, Options options) {
  TrainBatches batches(options);
  if (task != nullptr) {
    STRATA_ASSIGN_OR_RETURN(
        task::TaskBatcher batcher,
        task::TaskBatcher::Create(&task->definition, &task->train,
                                  {options.batch, options.seq, options.seed, options.rank,
                                   options.world_size}));
    batches.batcher_.emplace(std::move(batcher));
    return batches;
  }
  if (corpus == nullptr) return absl::InvalidArgumentError("no training data");
  STRATA_ASSIGN_OR_RETURN(
      BatchSampler sampler,
      BatchSampler::Create(corpus, {options.batch, options.seq, options.seed, options.rank,
                                    options.world_size}));
  batches.sampler_.emplace(std::move(sampler));
  batches.tokens_.resize(static_cast<size_t>(options.batch) * options.seq);
  batches.targets_.resize(batches.tokens_.size());
  return batches;
}

absl::Status TrainBatches::Next() {
  if (batcher_.has_value()) return batcher_->Next(&task_batch_);
  sampler_->Next(absl::MakeSpan(tokens_), absl::MakeSpan(targets_));
  return absl::OkStatus();
}

absl::Span<const int32_t> TrainBatches::tokens() const {
  return batcher_.has_value() ? absl::Span<const int32_t>(task_batch_.tokens) : tokens_;
}
absl::Span<const int32_t> TrainBatches::targets() const {
  return batcher_.has_value() ? absl::Span<const int32_t>(task_batch_.targets) : targets_;
}
int TrainBatches::rows() const { return batcher_.has_value() ? task_batch_.rows : options_.batch; }
int TrainBatches::T() const { return batcher_.has_value() ? task_batch_.T : options_.seq; }
const SequenceObjective* TrainBatches::objective() const {
  return batcher_.has_value() ? task_batch_.sequence_objective() : nullptr;
}
SamplerPosition TrainBatches::position() const {
  return batcher_.has_value() ? batcher_->position() : sampler_->position();
}
void TrainBatches::set_position(const SamplerPosition& position) {
  if (batcher_.has_value()) {
    batcher_->set_position(position);
  } else {
    sampler_->set_position(position);
  }
}

absl::StatusOr<EvalResult> EvaluateHeldOut(const TokenCorpus* corpus, const task::TaskData* task,
                                           Transformer* model, const task::BatchLoss& loss,
                                           int batch, int seq, int eval_batches, bool generate) {
  EvalResult result;
  if (task != nullptr) {
    task::Decode decode;
    std::unique_ptr<Generator> generator;
    const task::TaskDefinition& definition = task->definition;
    if (generate && definition.kind == task::TaskKind::kGeneration && task->tokenizer != nullptr) {
      STRATA_ASSIGN_OR_RETURN(generator, Generator::Create({model, task->tokenizer, 0}));
      decode = [&](const std::vector<int32_t>& prompt) -> absl::StatusOr<std::string> {
        GenerateOptions options;
        const int room = model->config().max_seq_len - model->PrefixLength() -
                         static_cast<int>(prompt.size());
        if (room < 1) return std::string();  // No position left to answer in.
        options.max_new_tokens = std::min(definition.max_new_tokens, room);
        options.stop_strings = definition.stop;
        if (task->tokenizer->eos_id() >= 0) options.stop_token_ids = {task->tokenizer->eos_id()};
        if (task->tokenizer->vocab_size() < model->config().vocab_size) {
          options.vocab_limit = task->tokenizer->vocab_size();
        }
        STRATA_ASSIGN_OR_RETURN(Generation generation, generator->Generate(prompt, options));
        return generation.text;
      };
    }
    STRATA_ASSIGN_OR_RETURN(
        task::TaskScores scores,
        task::EvaluateTask(definition, task->dev, model, loss, batch, seq, decode));
    result.loss = scores.loss;
    result.metrics = std::move(scores.metrics);
    return result;
  }
  if (corpus == nullptr) return absl::FailedPreconditionError("no evaluation data");
  ObjectiveScope mean_loss(model, nullptr);
  STRATA_ASSIGN_OR_RETURN(
      const float value,
      MeanLossOverBatches(corpus, batch, seq, eval_batches,
                          [&](absl::Span<const int32_t> x, absl::Span<const int32_t> y) {
                            return loss(x, y, batch, seq);
                          }));
  result.loss = value;
  return result;
}

std::string DescribeEval(const EvalResult& eval) {
  std::string out = absl::StrFormat("eval loss %.4f", eval.loss);
  for (const auto& [name, value] : eval.metrics) absl::StrAppendFormat(&out, " | %s %.4f", name, value);
  return out;
}

}  // namespace strata
