// One entry point for the tokenizer of an unmodified Hugging Face model directory:
// tokenizer.json when present (GPT-2, LLaMA-3, Qwen2/2.5/3), else vocab.json + merges.txt (OPT,
// older GPT-2 repositories); then tokenizer_config.json and special_tokens_map.json where
// present (special tokens, add_bos_token / add_eos_token, added_tokens_decoder).
#ifndef STRATA_RUNTIME_DATA_TOKENIZER_DIRECTORY_H_
#define STRATA_RUNTIME_DATA_TOKENIZER_DIRECTORY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/data/tokenizer.h"
#include "runtime/data/tokenizer_config.h"

namespace strata {

absl::StatusOr<std::unique_ptr<BpeTokenizer>> LoadTokenizerFromDirectory(const std::string& dir);

// The directory's tokenizer_config.json with special_tokens_map.json over it (an empty config
// when neither exists); its chat template comes from chat_template.jinja when that file exists.
absl::StatusOr<TokenizerConfig> ReadTokenizerConfig(const std::string& dir);

}  // namespace strata

#endif  // STRATA_RUNTIME_DATA_TOKENIZER_DIRECTORY_H_
