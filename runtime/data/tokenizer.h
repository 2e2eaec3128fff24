// Tokenizers: the Tokenizer interface, a byte tokenizer (ids 0-255 are the bytes, 256 is
// end-of-text) for demos without a tokenizer file, and the byte-level BPE tokenizer GPT-2, OPT,
// LLaMA-3 and Qwen2/3 share: added tokens split out first (longest first), then each stretch
// between them normalized (optional, e.g. NFC), pre-tokenized by a regex (GPT-2's, or a Split
// pattern such as LLaMA-3's or Qwen's) and byte-level BPE'd by merge rank; the tokens the
// tokenizer adds around every text (OPT's and LLaMA-3's BOS) come from its post-processor.
//
// This file holds only the algorithm on a parsed BpeModel, so that it links with PCRE2 alone
// (the aarch64 edge client compiles it). The readers live beside it: tokenizer_json.cc
// (tokenizer.json, defines BpeTokenizer::FromJson/FromFile), gpt2_vocab_files.cc (vocab.json +
// merges.txt), tokenizer_config.cc (tokenizer_config.json), tokenizer_directory.cc (a model
// directory; defines LoadTokenizer). Depend on //runtime/data:tokenizer for all of them.
//
// Pre-tokenization regexes run on PCRE2 with Unicode properties, so a tokenizer.json pattern is
// used as written (\p{L}, \p{N}, lookahead, (?i:...)).
#ifndef STRATA_RUNTIME_DATA_TOKENIZER_H_
#define STRATA_RUNTIME_DATA_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace strata {

class Tokenizer {
 public:
  struct EncodeOptions {
    // Adds the tokens the tokenizer puts around every text (as Hugging Face's
    // `tokenizer(text)` and `encode(text)` do by default): OPT's `</s>`, LLaMA-3's
    // `<|begin_of_text|>`. False gives the text's own tokens only.
    bool add_special_tokens = true;
  };

  virtual ~Tokenizer() = default;
  // Encode(text, {}): with the tokenizer's special tokens.
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text) const {
    return Encode(text, EncodeOptions());
  }
  virtual absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text,
                                                      const EncodeOptions& options) const = 0;
  // Fails on ids outside the vocabulary. Invalid UTF-8 produced by partial byte sequences is
  // returned as the raw bytes. Special tokens decode to their text.
  virtual absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const = 0;
  // Ids are in [0, vocab_size()).
  virtual int vocab_size() const = 0;
  // The end-of-text id appended between documents, or -1.
  virtual int eos_id() const = 0;
  // The beginning-of-text id, or -1 when the tokenizer has none.
  virtual int bos_id() const = 0;
};

class ByteTokenizer final : public Tokenizer {
 public:
  using Tokenizer::Encode;
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text,
                                              const EncodeOptions& options) const override;
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const override;
  int vocab_size() const override { return 257; }
  int eos_id() const override { return 256; }
  int bos_id() const override { return -1; }
};

// GPT-2's pre-tokenization regex (ByteLevel with use_regex = true, and GPT2Tokenizer).
extern const char kGpt2PreTokenizerPattern[];

// Maps text to text before pre-tokenization (tokenizer.json "normalizer"); see
// unicode_normalizer.h.
class TextNormalizer {
 public:
  virtual ~TextNormalizer() = default;
  // Sets `*out` to the normalized `text`, or returns false (leaving `*out` alone) when `text` is
  // already normalized. Fails on invalid UTF-8.
  virtual absl::StatusOr<bool> Normalize(absl::string_view text, std::string* out) const = 0;
};

// A byte-level BPE tokenizer as its files describe it. Tokens are in GPT-2's byte-to-unicode
// alphabet ("Ġ" for a space).
struct BpeModel {
  struct AddedToken {
    std::string content;
    int32_t id = -1;
    bool special = true;
    // Whether the token also absorbs the whitespace on its left / right.
    bool lstrip = false;
    bool rstrip = false;
  };

  absl::flat_hash_map<std::string, int32_t> vocab;
  std::vector<std::pair<std::string, std::string>> merges;  // By rank.
  bool ignore_merges = false;            // A pre-token that is a vocabulary entry is taken whole.
  std::vector<AddedToken> added_tokens;  // Split out of the text before anything else.
  std::unique_ptr<TextNormalizer> normalizer;  // Null: none.
  std::string pattern;            // The pre-tokenization regex; empty: the text is one piece.
  bool add_prefix_space = false;  // ByteLevel: a space before text that does not start with one.
  // Ids put before / after every text when EncodeOptions::add_special_tokens is set.
  std::vector<int32_t> prefix_ids;
  std::vector<int32_t> suffix_ids;
  int32_t bos_id = -1;
  int32_t eos_id = -1;  // -1: the first of <|endoftext|>, <|end_of_text|>, </s> that is added.
  std::string source;   // Names the files in errors.
};

class BpeTokenizer final : public Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> Create(BpeModel model);
  // Parses tokenizer.json text; `source` names it in errors. Defined in tokenizer_json.cc.
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> FromJson(absl::string_view json,
                                                                absl::string_view source);
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> FromFile(const std::string& path);
  ~BpeTokenizer() override;

  using Tokenizer::Encode;
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text,
                                              const EncodeOptions& options) const override;
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const override;
  int vocab_size() const override;
  int eos_id() const override;
  int bos_id() const override;

  // The id of a token string (vocabulary or added token), or -1.
  int TokenId(absl::string_view token) const;
  // The token string of an id (in the byte-level alphabet unless it is an added token), or ""
  // for an id outside the vocabulary.
  std::string TokenString(int32_t id) const;

 private:
  struct Impl;
  explicit BpeTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Loads `path` as a tokenizer: the byte tokenizer when `path` is empty, a Hugging Face model
// directory (LoadTokenizerFromDirectory) when it is a directory, else a tokenizer.json file.
// Defined in tokenizer_directory.cc.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path);

}  // namespace strata

#endif  // STRATA_RUNTIME_DATA_TOKENIZER_H_
