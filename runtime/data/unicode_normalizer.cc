// See unicode_normalizer.h.
#include "runtime/data/unicode_normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/utypes.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "runtime/base/shown_value.h"

namespace strata {
namespace {

class UnicodeNormalizer final : public TextNormalizer {
 public:
  UnicodeNormalizer(const icu::Normalizer2* normalizer, std::string form)
      : normalizer_(normalizer), form_(std::move(form)) {}

  absl::StatusOr<bool> Normalize(absl::string_view text, std::string* out) const override {
    const icu::StringPiece piece(text.data(), static_cast<int32_t>(text.size()));
    UErrorCode status = U_ZERO_ERROR;
    const bool normalized = normalizer_->isNormalizedUTF8(piece, status);
    if (U_SUCCESS(status) && normalized) return false;
    if (U_FAILURE(status)) return Failed(status);
    std::string result;
    result.reserve(text.size() + text.size() / 4);
    icu::StringByteSink<std::string> sink(&result);
    normalizer_->normalizeUTF8(0, piece, sink, nullptr, status);
    if (U_FAILURE(status)) return Failed(status);
    *out = std::move(result);
    return true;
  }

 private:
  absl::Status Failed(UErrorCode status) const {
    return absl::InvalidArgumentError(absl::StrCat(
        form_, " normalization failed (", u_errorName(status), "): the text is not valid UTF-8?"));
  }

  const icu::Normalizer2* normalizer_;  // Owned by ICU.
  std::string form_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TextNormalizer>> CreateUnicodeNormalizer(absl::string_view form) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* normalizer = nullptr;
  if (form == "NFC") {
    normalizer = icu::Normalizer2::getNFCInstance(status);
  } else if (form == "NFD") {
    normalizer = icu::Normalizer2::getNFDInstance(status);
  } else if (form == "NFKC") {
    normalizer = icu::Normalizer2::getNFKCInstance(status);
  } else if (form == "NFKD") {
    normalizer = icu::Normalizer2::getNFKDInstance(status);
  } else {
    return absl::UnimplementedError(absl::StrCat("normalizer ", ShownValue(form),
                                                 " is not supported (NFC, NFD, NFKC, NFKD are)"));
  }
  if (U_FAILURE(status) || normalizer == nullptr) {
    return absl::InternalError(
        absl::StrCat("ICU has no ", form, " normalizer: ", u_errorName(status)));
  }
  return std::unique_ptr<TextNormalizer>(new UnicodeNormalizer(normalizer, std::string(form)));
}

}  // namespace strata
