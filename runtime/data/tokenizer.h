// Tokenizers: a byte-level BPE tokenizer read from a Hugging Face tokenizer.json (GPT-2 and
// LLaMA-3 style: ByteLevel pre-tokenization with the GPT-2 regex, or a Split regex followed by
// ByteLevel; merges by rank; "ignore_merges"; added/special tokens), and a byte tokenizer
// (ids 0-255 are the bytes, 256 is end-of-text) for demos without a tokenizer file.
//
// Pre-tokenization regexes run on PCRE2 with Unicode properties, so the tokenizer.json pattern
// is used as written (\p{L}, \p{N}, lookahead).
#ifndef STRATA_RUNTIME_DATA_TOKENIZER_H_
#define STRATA_RUNTIME_DATA_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace strata {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text) const = 0;
  // Fails on ids outside the vocabulary. Invalid UTF-8 produced by partial byte sequences is
  // returned as the raw bytes.
  virtual absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const = 0;
  // Ids are in [0, vocab_size()).
  virtual int vocab_size() const = 0;
  // The end-of-text id appended between documents, or -1.
  virtual int eos_id() const = 0;
};

class ByteTokenizer final : public Tokenizer {
 public:
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text) const override;
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const override;
  int vocab_size() const override { return 257; }
  int eos_id() const override { return 256; }
};

class BpeTokenizer final : public Tokenizer {
 public:
  // Parses tokenizer.json text; `source` names it in errors.
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> FromJson(absl::string_view json,
                                                                absl::string_view source);
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> FromFile(const std::string& path);
  ~BpeTokenizer() override;

  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text) const override;
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const override;
  int vocab_size() const override;
  int eos_id() const override;

  // The id of a token string (vocabulary or added token), or -1.
  int TokenId(absl::string_view token) const;

 private:
  struct Impl;
  explicit BpeTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Loads `path` as a BPE tokenizer.json, or the byte tokenizer when `path` is empty.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path);

}  // namespace strata

#endif  // STRATA_RUNTIME_DATA_TOKENIZER_H_
