// Model directories: tokenizer.json preferred over vocab.json + merges.txt, tokenizer_config.json
// and special_tokens_map.json applied, LoadTokenizer on a directory, and a directory with no
// tokenizer refused.
#include "runtime/data/tokenizer_directory.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string MakeDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = absl::StrCat(tmp ? tmp : "/tmp", "/", name);
  mkdir(dir.c_str(), 0755);
  return dir;
}

void Write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

constexpr char kVocab[] = R"({"<s>": 0, "<pad>": 1, "</s>": 2, "a": 3, "b": 4, "ab": 5})";

TEST(TokenizerDirectoryTest, OptStyleVocabAndMergesWithConfig) {
  const std::string dir = MakeDir("opt");
  Write(dir + "/vocab.json", kVocab);
  Write(dir + "/merges.txt", "#version: 0.2\na b\n");
  Write(dir + "/tokenizer_config.json",
        R"({"bos_token": {"content": "</s>"}, "eos_token": "</s>", "pad_token": "<pad>",
            "add_bos_token": true, "chat_template": "{{ messages }}"})");
  Write(dir + "/special_tokens_map.json", R"({"pad_token": {"content": "<s>"}})");
  auto tok = LoadTokenizerFromDirectory(dir);
  ASSERT_TRUE(tok.ok()) << tok.status();
  // special_tokens_map.json's pad_token replaced tokenizer_config.json's: <s> is special.
  EXPECT_THAT(*(*tok)->Encode("ab<s>ab</s>"), ElementsAre(2, 5, 0, 5, 2));
  EXPECT_EQ((*tok)->eos_id(), 2);
  auto config = ReadTokenizerConfig(dir);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->pad_token, "<s>");
  EXPECT_EQ(config->chat_template, "{{ messages }}");
  // LoadTokenizer takes the directory too.
  auto any = LoadTokenizer(dir);
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_THAT(*(*any)->Encode("ab"), ElementsAre(2, 5));
}

TEST(TokenizerDirectoryTest, TokenizerJsonWinsOverVocabFiles) {
  const std::string dir = MakeDir("both");
  Write(dir + "/vocab.json", kVocab);
  Write(dir + "/merges.txt", "#version: 0.2\na b\n");
  Write(dir + "/tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1},
                                                "merges": []}})");
  auto tok = LoadTokenizerFromDirectory(dir);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_THAT(*(*tok)->Encode("ab"), ElementsAre(0, 1));
}

TEST(TokenizerDirectoryTest, MissingOrBrokenFilesAreNamed) {
  const std::string empty = MakeDir("empty");
  auto none = LoadTokenizerFromDirectory(empty);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(none.status().message(), HasSubstr("vocab.json + merges.txt"));
  const std::string only_vocab = MakeDir("only_vocab");
  Write(only_vocab + "/vocab.json", kVocab);
  EXPECT_EQ(LoadTokenizerFromDirectory(only_vocab).status().code(), absl::StatusCode::kNotFound);
  const std::string bad_config = MakeDir("bad_config");
  Write(bad_config + "/vocab.json", kVocab);
  Write(bad_config + "/merges.txt", "a b\n");
  Write(bad_config + "/tokenizer_config.json", R"({"eos_token": ["</s>"]})");
  EXPECT_THAT(LoadTokenizerFromDirectory(bad_config).status().message(),
              HasSubstr("bad_config/tokenizer_config.json: eos_token"));
  EXPECT_EQ(LoadTokenizerFromDirectory(empty + "/nothing").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace strata
