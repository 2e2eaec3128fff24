// Reads a Hugging Face tokenizer_config.json (and special_tokens_map.json, which has the same
// special-token keys) and applies it to a BpeModel:
//   - bos_token / eos_token / unk_token / pad_token / additional_special_tokens, each a string or
//     {"content": ...}: the token must be in the vocabulary or the added tokens; it becomes an
//     added token (never split by BPE, as in transformers), and bos/eos set bos_id/eos_id;
//   - added_tokens_decoder {"id": {"content", "lstrip", "rstrip", "special", ...}}: added tokens;
//     an id whose content disagrees with tokenizer.json or vocab.json is refused;
//   - add_bos_token / add_eos_token, where present, decide whether BOS is put before / EOS after
//     every text, replacing what the post-processor does with them (GPT2Tokenizer's
//     add_bos_token, which OPT sets: `</s>` before every text; LlamaTokenizerFast's flags);
//   - add_prefix_space: ByteLevel's;
//   - chat_template (a string, or the "default" of a list of named templates): kept for
//     chat_template.h.
// "split_special_tokens": true is refused. Other keys (model_max_length, padding_side,
// tokenizer_class, errors, clean_up_tokenization_spaces, ...) do not change token ids and are
// not applied.
#ifndef STRATA_RUNTIME_DATA_TOKENIZER_CONFIG_H_
#define STRATA_RUNTIME_DATA_TOKENIZER_CONFIG_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/data/tokenizer.h"

namespace strata {

struct TokenizerConfig {
  // Unset when absent or null.
  std::optional<std::string> bos_token, eos_token, unk_token, pad_token;
  std::vector<std::string> additional_special_tokens;
  std::optional<bool> add_bos_token, add_eos_token, add_prefix_space;
  std::vector<BpeModel::AddedToken> added_tokens;  // From added_tokens_decoder.
  std::string chat_template;                       // Empty when absent.
  std::string source;                              // Names the file(s) in errors.
};

// `source` names the file in errors.
absl::StatusOr<TokenizerConfig> ParseTokenizerConfig(absl::string_view json,
                                                     absl::string_view source);

// The special tokens `from` sets replace those of `into` (special_tokens_map.json over
// tokenizer_config.json, as transformers loads them).
void OverrideSpecialTokens(const TokenizerConfig& from, TokenizerConfig* into);

absl::Status ApplyTokenizerConfig(const TokenizerConfig& config, BpeModel* model);

}  // namespace strata

#endif  // STRATA_RUNTIME_DATA_TOKENIZER_CONFIG_H_
