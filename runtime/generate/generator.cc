// See generator.h.
#include "runtime/generate/generator.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"

namespace strata {
namespace {

// Attaches `cache` over the model's adapters for the life of the scope, then the adapters again
// as they were.
class AttachedCache {
 public:
  AttachedCache(Transformer& model, KvCache* cache)
      : model_(model), inner_(model.adapters()), frozen_(model.base_frozen()) {
    if (cache != nullptr) model_.SetAdapters(cache, frozen_);
  }
  ~AttachedCache() { model_.SetAdapters(inner_, frozen_); }
  AttachedCache(const AttachedCache&) = delete;
  AttachedCache& operator=(const AttachedCache&) = delete;

 private:
  Transformer& model_;
  Transformer::BlockAdapters* inner_;
  bool frozen_;
};

// The earliest position at which one of `stops` occurs in `text`, or npos.
size_t FirstStop(const std::string& text, const std::vector<std::string>& stops) {
  size_t first = std::string::npos;
  for (const std::string& s : stops) first = std::min(first, text.find(s));
  return first;
}

}  // namespace

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
      return "length";
    case FinishReason::kStopToken:
      return "stop_token";
    case FinishReason::kStopString:
      return "stop_string";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<Generator>> Generator::Create(Options options) {
  if (options.model == nullptr) return absl::InvalidArgumentError("Generator needs a model");
  if (options.stream < 0 || options.stream >= Transformer::kStreams) {
    return absl::InvalidArgumentError(absl::StrCat("stream ", options.stream, " is not 0 or 1"));
  }
  return std::unique_ptr<Generator>(new Generator(options));
}

Generator::Generator(Options options) : options_(options), cache_(options.model->config()) {}

absl::Status Generator::Check(absl::Span<const int32_t> prompt,
                              const GenerateOptions& options) const {
  const ModelConfig& c = options_.model->config();
  if (prompt.empty()) return absl::InvalidArgumentError("the prompt has no tokens");
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] < 0 || prompt[i] >= c.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("prompt[", i, "] = ", prompt[i],
                                                     " is outside the model's vocabulary [0, ",
                                                     c.vocab_size, ")"));
    }
  }
  if (options.max_new_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens ", options.max_new_tokens, " must be >= 1"));
  }
  if (absl::Status s = ValidateSampling(options.sampling); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("sampling: ", s.message()));
  }
  if (options.vocab_limit < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_limit ", options.vocab_limit, " must be >= 0 (0: no limit)"));
  }
  for (const std::string& s : options.stop_strings) {
    if (s.empty()) return absl::InvalidArgumentError("stop_strings holds an empty string");
  }
  if (!options.stop_strings.empty() && options_.tokenizer == nullptr) {
    return absl::InvalidArgumentError("stop_strings need a tokenizer to decode the text");
  }
  const int prefix = options_.model->PrefixLength();
  const int64_t total = static_cast<int64_t>(prompt.size()) + options.max_new_tokens;
  if (total > c.max_seq_len - prefix) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a prompt of ", prompt.size(), " tokens and max_new_tokens ", options.max_new_tokens, " (",
        total, " positions) exceed the model's maximum sequence length ", c.max_seq_len,
        prefix > 0 ? absl::StrCat(" less the adapters' prefix of ", prefix) : ""));
  }
  return absl::OkStatus();
}

absl::Status Generator::Step(absl::Span<const int32_t> tokens, bool cached, float* logits) {
  Transformer& m = *options_.model;
  const int stream = options_.stream;
  const float* weights = m.params().data();
  const int T = static_cast<int>(tokens.size());
  STRATA_RETURN_IF_ERROR(m.BeginForward(weights, tokens, 1, T, stream));
  absl::Status status;
  for (int l = 0; status.ok() && l < m.config().n_layer; ++l) {
    m.BlockForward(l, weights + m.layout().BlockBegin(l), stream);
    if (cached) status = cache_.Append(l, m.AttentionInputs(stream), T);
  }
  if (status.ok()) status = m.StreamLogits(weights, T - 1, stream, logits);
  m.AbandonForward(stream);
  if (status.ok() && cached) status = cache_.Commit(T);
  return status;
}

absl::StatusOr<Generation> Generator::Generate(absl::Span<const int32_t> prompt,
                                               const GenerateOptions& options) {
  STRATA_RETURN_IF_ERROR(Check(prompt, options));
  Transformer& m = *options_.model;
  const int V = m.config().vocab_size;
  const int limit = options.vocab_limit > 0 ? std::min(options.vocab_limit, V) : V;
  const bool cached = options.use_cache;
  if (cached) {
    STRATA_RETURN_IF_ERROR(cache_.Reset(m.adapters(), options_.stream,
                                        static_cast<int>(prompt.size()) + options.max_new_tokens));
  }
  AttachedCache attached(m, cached ? &cache_ : nullptr);
  std::vector<int32_t> sequence(prompt.begin(), prompt.end());  // Without the cache.
  std::vector<float> logits(V);
  Generation out;
  STRATA_RETURN_IF_ERROR(Step(prompt, cached, logits.data()));
  for (int step = 0; step < options.max_new_tokens; ++step) {
    const int32_t token =
        ChooseToken(absl::MakeConstSpan(logits.data(), limit), options.sampling, step);
    out.tokens.push_back(token);
    if (options.keep_logits) out.logits.insert(out.logits.end(), logits.begin(), logits.end());
    if (std::find(options.stop_token_ids.begin(), options.stop_token_ids.end(), token) !=
        options.stop_token_ids.end()) {
      out.finish = FinishReason::kStopToken;
      break;
    }
    if (!options.stop_strings.empty()) {
      STRATA_ASSIGN_OR_RETURN(std::string text, options_.tokenizer->Decode(out.tokens));
      if (const size_t at = FirstStop(text, options.stop_strings); at != std::string::npos) {
        out.text = text.substr(0, at);
        out.finish = FinishReason::kStopString;
        return out;
      }
    }
    if (step + 1 == options.max_new_tokens) break;
    if (cached) {
      STRATA_RETURN_IF_ERROR(Step({&token, 1}, true, logits.data()));
    } else {
      sequence.push_back(token);
      STRATA_RETURN_IF_ERROR(Step(sequence, false, logits.data()));
    }
  }
  if (options_.tokenizer != nullptr) {
    const size_t kept = out.tokens.size() - (out.finish == FinishReason::kStopToken ? 1 : 0);
    STRATA_ASSIGN_OR_RETURN(
        out.text, options_.tokenizer->Decode(absl::MakeConstSpan(out.tokens.data(), kept)));
  }
  return out;
}

}  // namespace strata
