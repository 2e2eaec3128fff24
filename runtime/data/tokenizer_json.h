// Reads a Hugging Face tokenizer.json into a BpeModel: model (BPE: vocab, merges in string or
// pair form, ignore_merges), added_tokens, normalizer (null, a Unicode form, or a Sequence of
// them), pre_tokenizer (ByteLevel, or Split then ByteLevel), post_processor (null, ByteLevel,
// TemplateProcessing, or a Sequence of them) and decoder (null or ByteLevel). Anything else is
// refused with its field and type named. Also defines BpeTokenizer::FromJson and FromFile.
#ifndef STRATA_RUNTIME_DATA_TOKENIZER_JSON_H_
#define STRATA_RUNTIME_DATA_TOKENIZER_JSON_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/data/tokenizer.h"

namespace strata {

// `source` names the file in errors.
absl::StatusOr<BpeModel> ParseTokenizerJson(absl::string_view json, absl::string_view source);

// The whole file; NotFound when it cannot be opened.
absl::StatusOr<std::string> ReadTokenizerFile(const std::string& path);

}  // namespace strata

#endif  // STRATA_RUNTIME_DATA_TOKENIZER_JSON_H_
