// vocab.json + merges.txt: the "#version" line skipped, merges by rank with GPT-2's
// pre-tokenization, and malformed files refused with the file and line named and their contents
// not echoed.
#include "runtime/data/gpt2_vocab_files.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kVocab[] =
    R"({"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4, "Ġ": 5, "Ġab": 6, "bc": 7, "x": 8})";

TEST(Gpt2VocabFilesTest, ReadsMergesByRankAfterTheVersionLine) {
  auto model = ParseGpt2VocabFiles(kVocab, "vocab.json", "#version: 0.2\na b\nĠ ab\nab c\nb c\n",
                                   "merges.txt");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->merges.size(), 4u);
  EXPECT_EQ(model->merges[1].first, "Ġ");
  auto tok = BpeTokenizer::Create(*std::move(model));
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_THAT(*(*tok)->Encode("abc ab"), ElementsAre(4, 6));  // GPT-2 regex: "abc", " ab".
  EXPECT_THAT(*(*tok)->Encode("bc"), ElementsAre(7));
  EXPECT_EQ(*(*tok)->Decode({4, 6}), "abc ab");
  EXPECT_EQ((*tok)->eos_id(), -1);  // Special tokens come from tokenizer_config.json.
}

TEST(Gpt2VocabFilesTest, AcceptsCrlfAndAMissingVersionLine) {
  auto model = ParseGpt2VocabFiles(kVocab, "vocab.json", "a b\r\nab c\r\n", "merges.txt");
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ(model->merges.size(), 2u);
  EXPECT_EQ(model->merges[0].second, "b");
}

TEST(Gpt2VocabFilesTest, MalformedFilesNameFileAndLineWithoutEchoingThem) {
  auto bad_merge = ParseGpt2VocabFiles(kVocab, "vocab.json",
                                       "#version: 0.2\na b\nsecret text here\n", "merges.txt");
  EXPECT_THAT(bad_merge.status().message(),
              AllOf(HasSubstr("merges.txt:3"), Not(HasSubstr("secret"))));
  auto three = ParseGpt2VocabFiles(kVocab, "vocab.json", "a b c\n", "merges.txt");
  EXPECT_THAT(three.status().message(), HasSubstr("merges.txt:1"));
  auto hidden = ParseGpt2VocabFiles(kVocab, "vocab.json", "password: hunter2 again\n", "m.txt");
  EXPECT_THAT(hidden.status().message(), AllOf(HasSubstr("m.txt:1"), Not(HasSubstr("hunter2"))));
  auto bad_vocab = ParseGpt2VocabFiles("[1, 2]", "vocab.json", "", "merges.txt");
  EXPECT_THAT(bad_vocab.status().message(), HasSubstr("vocab.json"));
  auto bad_id =
      ParseGpt2VocabFiles(R"({"a": 0, "the secret": "x"})", "vocab.json", "", "merges.txt");
  EXPECT_THAT(bad_id.status().message(), AllOf(HasSubstr("vocab.json"), Not(HasSubstr("secret"))));
  EXPECT_EQ(
      ReadGpt2VocabFiles("/nonexistent/vocab.json", "/nonexistent/merges.txt").status().code(),
      absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace strata
