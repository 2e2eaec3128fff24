// Text generation with a decoder-only Transformer on the CPU: given a prompt's token ids, new
// tokens one at a time (batch 1), greedy or sampled (sampling.h), until a stop token, a stop
// string in the decoded text, or max_new_tokens.
//
// With the cache (the default) the prompt runs through the model once and each new token then
// runs alone, attending to the keys and values cached for the tokens before it (KvCache, the
// model's prefix hook): a step costs one token's forward. Without it every step runs the whole
// sequence again (the reference the cache is tested against). The model's weights are its arena;
// adapters it has attached (LoRA, a PEFT prefix) take part as they do in training, and are
// attached again, as they were, when Generate returns. The model (inference stream `stream`)
// is the generator's while Generate runs.
#ifndef STRATA_RUNTIME_GENERATE_GENERATOR_H_
#define STRATA_RUNTIME_GENERATE_GENERATOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/data/tokenizer.h"
#include "runtime/generate/kv_cache.h"
#include "runtime/generate/sampling.h"
#include "runtime/model/transformer.h"

namespace strata {

struct GenerateOptions {
  // New tokens at most (>= 1). The prompt and these must fit the model's positions after the
  // attached adapters' prefix: prompt + max_new_tokens <= max_seq_len - prefix.
  int max_new_tokens = 32;
  SamplingOptions sampling;
  // Decoding ends after one of these is produced (a tokenizer's end-of-text).
  std::vector<int32_t> stop_token_ids;
  // Decoding ends once the decoded new text contains one of these (needs the generator's
  // tokenizer); the returned text ends before the earliest.
  std::vector<std::string> stop_strings;
  // > 0: only ids below it are chosen (a tokenizer smaller than the model's padded vocabulary).
  int vocab_limit = 0;
  // false: every step runs the whole sequence (no cache).
  bool use_cache = true;
  // Generation::logits keeps every step's logits.
  bool keep_logits = false;
};

enum class FinishReason { kLength, kStopToken, kStopString };
const char* FinishReasonName(FinishReason reason);

struct Generation {
  // The new tokens: a stop token, or the token that completed a stop string, is the last.
  std::vector<int32_t> tokens;
  // With a tokenizer: the new tokens decoded, without a stop token, ending before a stop string.
  std::string text;
  FinishReason finish = FinishReason::kLength;
  // With keep_logits: (tokens.size(), vocab_size) row-major, the logits each token was chosen
  // from.
  std::vector<float> logits;
};

class Generator {
 public:
  struct Options {
    Transformer* model = nullptr;  // Not owned.
    // Decodes the text (and finds stop strings); may be null. Not owned.
    const Tokenizer* tokenizer = nullptr;
    int stream = 0;  // The model's inference stream generation runs on (0 or 1).
  };
  static absl::StatusOr<std::unique_ptr<Generator>> Create(Options options);

  // Fails (naming the field) for an empty prompt, an id outside the vocabulary, bad options, or
  // a prompt and max_new_tokens beyond the model's positions.
  absl::StatusOr<Generation> Generate(absl::Span<const int32_t> prompt,
                                      const GenerateOptions& options);

 private:
  explicit Generator(Options options);
  absl::Status Check(absl::Span<const int32_t> prompt, const GenerateOptions& options) const;
  // Runs `tokens` (after those cached) through the model and writes the logits of the last one;
  // with the cache, appends their keys and values to it.
  absl::Status Step(absl::Span<const int32_t> tokens, bool cached, float* logits);

  Options options_;
  KvCache cache_;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_GENERATE_GENERATOR_H_
