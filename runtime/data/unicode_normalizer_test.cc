// Unicode normalization forms on ICU: composition, the quick-check pass-through, and refusal of
// forms that are not Unicode normalization forms.
#include "runtime/data/unicode_normalizer.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

TEST(UnicodeNormalizerTest, NfcComposesAndLeavesNormalizedTextAlone) {
  auto nfc = CreateUnicodeNormalizer("NFC");
  ASSERT_TRUE(nfc.ok()) << nfc.status();
  std::string out = "untouched";
  // Already NFC (ASCII, precomposed, CJK, emoji): reported unchanged, `out` not written.
  EXPECT_FALSE(*(*nfc)->Normalize("plain ascii", &out));
  EXPECT_FALSE(*(*nfc)->Normalize("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x9a\x80", &out));
  EXPECT_EQ(out, "untouched");
  // e + COMBINING ACUTE ACCENT -> U+00E9; A + COMBINING RING ABOVE -> U+00C5.
  EXPECT_TRUE(*(*nfc)->Normalize("cafe\xcc\x81 A\xcc\x8a", &out));
  EXPECT_EQ(out, "caf\xc3\xa9 \xc3\x85");
  // Canonical reordering: s + dot below + dot above (given as dot above, dot below).
  EXPECT_TRUE(*(*nfc)->Normalize("s\xcc\x87\xcc\xa3", &out));
  EXPECT_EQ(out, "\xe1\xb9\xa9");  // U+1E69.
}

TEST(UnicodeNormalizerTest, OtherFormsDecomposeOrFoldCompatibility) {
  std::string out;
  auto nfd = CreateUnicodeNormalizer("NFD");
  ASSERT_TRUE(nfd.ok());
  EXPECT_TRUE(*(*nfd)->Normalize("caf\xc3\xa9", &out));
  EXPECT_EQ(out, "cafe\xcc\x81");
  auto nfkc = CreateUnicodeNormalizer("NFKC");
  ASSERT_TRUE(nfkc.ok());
  EXPECT_TRUE(*(*nfkc)->Normalize("\xef\xac\x81x\xc2\xb2", &out));  // U+FB01 (fi ligature), x².
  EXPECT_EQ(out, "fix2");
  auto nfc = CreateUnicodeNormalizer("NFC");
  EXPECT_FALSE(*(*nfc)->Normalize("\xef\xac\x81", &out));  // NFC keeps compatibility characters.
}

TEST(UnicodeNormalizerTest, RefusesOtherNormalizersByName) {
  auto lower = CreateUnicodeNormalizer("Lowercase");
  EXPECT_EQ(lower.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(lower.status().message(), HasSubstr("\"Lowercase\""));
}

}  // namespace
}  // namespace strata
