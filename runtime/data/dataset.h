// Training data: a token corpus (flat uint16/uint32 token files in nanoGPT or llm.c layout, or
// JSONL/plain text tokenized on load with the tokenizer's special tokens, documents separated by
// its end-of-text id unless it already starts every text with that id) and a deterministic batch
// sampler over it.
//
// The sampler cuts the corpus into windows of T+1 tokens (stride T), permutes the windows each
// epoch with a seeded Fisher-Yates shuffle, and hands rank r of W the windows r, r+W, r+2W, ...
// of that order. Same seed, same batches, on any machine; the position (epoch, cursor) is
// plain data so a resumed job continues with the next batch.
#ifndef STRATA_RUNTIME_DATA_DATASET_H_
#define STRATA_RUNTIME_DATA_DATASET_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"
#include "runtime/data/tokenizer.h"

namespace strata {

enum class CorpusFormat { kAuto, kTokensU16, kTokensU32, kJsonl, kText };

// Parses "auto", "u16", "u32", "jsonl", "text".
absl::StatusOr<CorpusFormat> ParseCorpusFormat(absl::string_view name);

// Renders a conversation (a JSON list of {"role", "content"} messages) to text: the model's
// chat template (chat_messages.h).
using MessageRenderer = std::function<absl::StatusOr<std::string>(const nlohmann::json&)>;

class TokenCorpus {
 public:
  // Reads `paths` in order. kAuto picks by extension: .bin -> u16, .jsonl -> JSONL, anything
  // else -> text. Text formats need `tokenizer`; `text_field` names the JSONL field ("text"
  // when empty). A JSONL field holding a list of messages instead of a string is rendered by
  // `render_messages` (and tokenized without the tokenizer's own special tokens: the template
  // writes them); without one it is an error. Every token must be < `vocab_size`; errors name
  // the file and position.
  static absl::StatusOr<TokenCorpus> Load(const std::vector<std::string>& paths,
                                          CorpusFormat format, const Tokenizer* tokenizer,
                                          const std::string& text_field, int vocab_size,
                                          const MessageRenderer& render_messages = nullptr);

  static TokenCorpus FromTokens(std::vector<int32_t> tokens) {
    TokenCorpus c;
    c.tokens_ = std::move(tokens);
    return c;
  }

  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }
  absl::Span<const int32_t> tokens() const { return tokens_; }

  // Entropy (nats) of the corpus's unigram token distribution: the loss of the best model that
  // ignores context.
  double UnigramEntropy() const;

 private:
  std::vector<int32_t> tokens_;
};

struct SamplerPosition {
  int64_t epoch = 0;
  int64_t cursor = 0;  // Windows of this rank already served in the epoch.
};

class BatchSampler {
 public:
  struct Options {
    int batch = 1;  // Sequences per rank per batch.
    int seq = 1;    // Tokens per sequence.
    uint64_t seed = 0;
    int rank = 0;
    int world_size = 1;
  };

  // Fails when the corpus holds fewer windows than one global batch.
  static absl::StatusOr<BatchSampler> Create(const TokenCorpus* corpus, Options options);

  // Fills tokens and targets (batch * seq each; targets are tokens shifted by one).
  void Next(absl::Span<int32_t> tokens, absl::Span<int32_t> targets);

  const SamplerPosition& position() const { return position_; }
  void set_position(const SamplerPosition& position);
  int64_t windows() const { return windows_; }

 private:
  BatchSampler(const TokenCorpus* corpus, Options options, int64_t windows)
      : corpus_(corpus), options_(options), windows_(windows) {}
  void Shuffle();

  const TokenCorpus* corpus_;
  Options options_;
  int64_t windows_;
  int64_t per_rank_ = 0;
  std::vector<int64_t> order_;
  int64_t order_epoch_ = -1;
  SamplerPosition position_;
};

// The mean of `loss` over the first min(max_batches, windows / batch) batches of a seed-0
// sampler over `corpus` (a fixed evaluation set). Fails when max_batches < 1.
absl::StatusOr<float> MeanLossOverBatches(
    const TokenCorpus* corpus, int batch, int seq, int max_batches,
    const std::function<absl::StatusOr<float>(absl::Span<const int32_t> tokens,
                                              absl::Span<const int32_t> targets)>& loss);

}  // namespace strata

#endif  // STRATA_RUNTIME_DATA_DATASET_H_
