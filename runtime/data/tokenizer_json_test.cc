// tokenizer.json parts beyond the model: NFC normalization, Qwen's Split regex, added tokens that
// absorb whitespace, post-processors that add tokens around every text, and refusal by name of
// what is not implemented.
#include "runtime/data/tokenizer_json.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A byte-level vocabulary where "é" (U+00E9, bytes C3 A9 -> "Ã©") is one token and "e" + a
// combining acute accent (bytes CC 81 -> "Ì" "ģ") is three: only NFC makes "e\u0301" one token.
std::string Json(const std::string& extra) {
  return R"({)" + extra + R"(
    "added_tokens": [{"id": 20, "content": "<|im_start|>", "special": true},
                     {"id": 21, "content": "<mask>", "special": true, "lstrip": true}],
    "model": {"type": "BPE",
      "vocab": {"c": 0, "a": 1, "f": 2, "e": 3, "Ã": 4, "©": 5, "Ã©": 6, "Ġ": 7, "x": 8,
                "Ì": 9, "ģ": 10, "Ġx": 11},
      "merges": ["Ã ©", "Ġ x"]}})";
}

constexpr char kQwenPre[] = R"(
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex":
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
       "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]},
    "decoder": {"type": "ByteLevel"},)";

TEST(TokenizerJsonTest, NfcNormalizerComposesBeforeBpe) {
  auto with_nfc = BpeTokenizer::FromJson(Json(std::string(kQwenPre) + R"(
      "normalizer": {"type": "NFC"},)"),
                                         "t.json");
  ASSERT_TRUE(with_nfc.ok()) << with_nfc.status();
  EXPECT_THAT(*(*with_nfc)->Encode("cafe\xcc\x81"), ElementsAre(0, 1, 2, 6));
  EXPECT_EQ(*(*with_nfc)->Decode({0, 1, 2, 6}), "caf\xc3\xa9");
  auto without = BpeTokenizer::FromJson(Json(kQwenPre), "t.json");
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_THAT(*(*without)->Encode("cafe\xcc\x81"), ElementsAre(0, 1, 2, 3, 9, 10));
  // A Sequence of one form is that form.
  auto sequence = BpeTokenizer::FromJson(Json(std::string(kQwenPre) + R"(
      "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}]},)"),
                                         "t.json");
  ASSERT_TRUE(sequence.ok()) << sequence.status();
  EXPECT_THAT(*(*sequence)->Encode("e\xcc\x81"), ElementsAre(6));
}

TEST(TokenizerJsonTest, AddedTokensSplitFirstAndLstripAbsorbsSpaces) {
  auto tok = BpeTokenizer::FromJson(Json(kQwenPre), "t.json");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_THAT(*(*tok)->Encode("x<|im_start|>x"), ElementsAre(8, 20, 8));
  // "<mask>" has lstrip: the spaces before it belong to it.
  EXPECT_THAT(*(*tok)->Encode("x  <mask> x"), ElementsAre(8, 21, 11));
  EXPECT_THAT(*(*tok)->Encode("x  <|im_start|>"), ElementsAre(8, 7, 7, 20));
}

TEST(TokenizerJsonTest, TemplateProcessingAddsTokensAroundEveryText) {
  auto tok = BpeTokenizer::FromJson(Json(std::string(kQwenPre) + R"(
      "post_processor": {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "trim_offsets": false},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "<mask>", "type_id": 0}}],
         "pair": [],
         "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [20], "tokens": ["<|im_start|>"]},
                            "<mask>": {"id": "<mask>", "ids": [21], "tokens": ["<mask>"]}}}]},)"),
                                    "t.json");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_THAT(*(*tok)->Encode("x"), ElementsAre(20, 8, 21));
  EXPECT_THAT(*(*tok)->Encode(""), ElementsAre(20, 21));
  EXPECT_THAT(*(*tok)->Encode("x", {.add_special_tokens = false}), ElementsAre(8));
}

TEST(TokenizerJsonTest, RefusesWhatIsNotImplementedByName) {
  auto refused = [](const std::string& extra) {
    return std::string(BpeTokenizer::FromJson(Json(extra), "t.json").status().message());
  };
  EXPECT_THAT(refused(R"("normalizer": {"type": "Lowercase"},)"),
              HasSubstr("normalizer: normalizer \"Lowercase\""));
  EXPECT_THAT(refused(R"("normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"},
                          {"type": "Lowercase"}]},)"),
              HasSubstr("normalizer"));
  EXPECT_THAT(refused(R"("post_processor": {"type": "RobertaProcessing"},)"),
              HasSubstr("post_processor type \"RobertaProcessing\""));
  EXPECT_THAT(refused(R"("post_processor": {"type": "TemplateProcessing",
                          "single": [{"Sequence": {"id": "A"}}, {"Sequence": {"id": "B"}}]},)"),
              HasSubstr("post_processor.single[1]"));
  EXPECT_THAT(refused(R"("post_processor": {"type": "TemplateProcessing",
                          "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}],
                          "special_tokens": {}},)"),
              HasSubstr("post_processor.single[0]"));
  EXPECT_THAT(refused(R"("decoder": {"type": "Metaspace"},)"),
              HasSubstr("decoder type \"Metaspace\""));
  EXPECT_THAT(refused(R"("pre_tokenizer": {"type": "Whitespace"},)"),
              HasSubstr("pre_tokenizer type \"Whitespace\""));
  std::string json = Json("");
  json.replace(json.find("\"merges\""), 8, "\"byte_fallback\": true, \"merges\"");
  EXPECT_THAT(BpeTokenizer::FromJson(json, "t.json").status().message(),
              HasSubstr("model.byte_fallback"));
}

}  // namespace
}  // namespace strata
