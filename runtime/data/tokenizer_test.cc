// Tokenizers on small hand-made vocabularies: merge order, ignore_merges, added tokens, decode,
// and malformed tokenizer.json files rejected with the offending key named.
#include "runtime/data/tokenizer.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// "Ġ" is the byte-level stand-in for a space.
constexpr char kTiny[] = R"({
  "added_tokens": [{"id": 9, "content": "<|endoftext|>", "special": true}],
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
  "model": {"type": "BPE",
    "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4, "Ġ": 5, "Ġab": 6, "bc": 7, "x": 8},
    "merges": ["a b", "Ġ ab", "ab c", "b c"]}})";

TEST(BpeTokenizerTest, AppliesMergesByRankAndSplitsOnTheRegex) {
  auto tok = BpeTokenizer::FromJson(kTiny, "tiny.json");
  ASSERT_TRUE(tok.ok()) << tok.status();
  // "abc": a b -> ab (rank 0), then ab c -> abc (rank 2); "b c" (rank 3) never applies.
  EXPECT_THAT(*(*tok)->Encode("abc"), ElementsAre(4));
  // " ab" is one pre-token: Ġ a b -> Ġ ab -> Ġab.
  EXPECT_THAT(*(*tok)->Encode("abc ab"), ElementsAre(4, 6));
  EXPECT_THAT(*(*tok)->Encode("bc"), ElementsAre(7));
  EXPECT_THAT(*(*tok)->Encode("x<|endoftext|>ab"), ElementsAre(8, 9, 3));
  EXPECT_EQ((*tok)->eos_id(), 9);
  EXPECT_EQ(*(*tok)->Decode({4, 6, 9}), "abc ab<|endoftext|>");
  EXPECT_FALSE((*tok)->Decode({42}).ok());
  // A byte with no vocabulary entry cannot be encoded.
  EXPECT_THAT((*tok)->Encode("z").status().message(), HasSubstr("not in the vocabulary"));
}

TEST(BpeTokenizerTest, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
  std::string json = kTiny;
  json.replace(json.find("\"merges\""), 8, "\"ignore_merges\": true, \"merges\"");
  // With "b c" ranked first, "abc" would become a + bc without ignore_merges.
  const std::string merges = "[\"a b\", \"Ġ ab\", \"ab c\", \"b c\"]";
  json.replace(json.find(merges), merges.size(), "[\"b c\", \"a b\", \"Ġ ab\", \"ab c\"]");
  auto tok = BpeTokenizer::FromJson(json, "tiny.json");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_THAT(*(*tok)->Encode("abc"), ElementsAre(4));
}

TEST(BpeTokenizerTest, MalformedFilesNameTheProblem) {
  EXPECT_THAT(BpeTokenizer::FromJson("{", "t.json").status().message(), HasSubstr("t.json"));
  EXPECT_THAT(BpeTokenizer::FromJson(R"({"model": {"type": "WordPiece"}})", "t").status().message(),
              HasSubstr("model.type"));
  EXPECT_THAT(BpeTokenizer::FromJson(R"({"model": {"type": "BPE", "vocab": {"a": -1},
                                        "merges": []}})",
                                     "t")
                  .status()
                  .message(),
              HasSubstr("model.vocab[\"a\"]"));
  EXPECT_THAT(
      BpeTokenizer::FromJson(R"({"model": {"type": "BPE", "vocab": {}, "merges": [7]}})", "t")
          .status()
          .message(),
      HasSubstr("model.merges[0]"));
  EXPECT_THAT(BpeTokenizer::FromJson(
                  R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(["}},
                     "model": {"type": "BPE", "vocab": {}, "merges": []}})",
                  "t")
                  .status()
                  .message(),
              HasSubstr("pattern"));
  EXPECT_THAT(BpeTokenizer::FromFile("/nonexistent/tokenizer.json").status().code(),
              absl::StatusCode::kNotFound);
}

TEST(ByteTokenizerTest, RoundTripsBytes) {
  ByteTokenizer tok;
  const std::string text("h\xc3\xa9\0ll", 6);
  auto ids = tok.Encode(text);
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(104, 195, 169, 0, 108, 108));
  EXPECT_EQ(*tok.Decode(*ids), text);
  EXPECT_EQ(*tok.Decode({104, 256}), "h");  // End-of-text decodes to nothing.
  EXPECT_FALSE(tok.Decode({300}).ok());
  EXPECT_EQ(tok.vocab_size(), 257);
}

}  // namespace
}  // namespace strata
