// Reads the GPT-2 tokenizer files OPT and older GPT-2 repositories ship instead of (or beside)
// tokenizer.json: vocab.json ({"token": id}) and merges.txt (one "left right" merge a line by
// rank, after an optional "#version: ..." first line). The model is GPT-2's: ByteLevel
// pre-tokenization with the GPT-2 regex, no normalizer, no added tokens (tokenizer_config.json
// brings the special ones). Errors name the file and line; file contents are never echoed.
#ifndef STRATA_RUNTIME_DATA_GPT2_VOCAB_FILES_H_
#define STRATA_RUNTIME_DATA_GPT2_VOCAB_FILES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/data/tokenizer.h"

namespace strata {

// The files' text; the sources name them in errors.
absl::StatusOr<BpeModel> ParseGpt2VocabFiles(absl::string_view vocab_json,
                                             absl::string_view vocab_source,
                                             absl::string_view merges_txt,
                                             absl::string_view merges_source);

absl::StatusOr<BpeModel> ReadGpt2VocabFiles(const std::string& vocab_path,
                                            const std::string& merges_path);

}  // namespace strata

#endif  // STRATA_RUNTIME_DATA_GPT2_VOCAB_FILES_H_
