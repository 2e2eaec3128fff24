// Unicode normalization forms (NFC, NFD, NFKC, NFKD) for tokenizer.json "normalizer", on ICU's
// Normalizer2. Text already in the form (all of ASCII, most real text) is detected by ICU's
// quick check and passed through without a copy.
#ifndef STRATA_RUNTIME_DATA_UNICODE_NORMALIZER_H_
#define STRATA_RUNTIME_DATA_UNICODE_NORMALIZER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/data/tokenizer.h"

namespace strata {

// `form` is "NFC", "NFD", "NFKC" or "NFKD" (a tokenizer.json normalizer type); anything else is
// refused with its name.
absl::StatusOr<std::unique_ptr<TextNormalizer>> CreateUnicodeNormalizer(absl::string_view form);

}  // namespace strata

#endif  // STRATA_RUNTIME_DATA_UNICODE_NORMALIZER_H_
