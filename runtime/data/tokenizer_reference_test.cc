// Real GPT-2 and LLaMA-3 vocabularies and merges (from npm packages installed by
// deploy/setup.sh), with reference encodings made by those packages' own encoders: Strata's BPE
// must produce the same ids for every case and decode them back to the text. Skips when the
// packages or node are missing.
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/data/tokenizer.h"

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

TEST(TokenizerReferenceTest, MatchesGpt2AndLlama3ReferenceEncoders) {
  const std::string modules = NpmModules();
  if (!Exists(modules + "/gpt-3-encoder") || !Exists(modules + "/llama3-tokenizer-js")) {
    GTEST_SKIP() << "reference tokenizer packages are not installed under " << modules
                 << " (deploy/setup.sh installs them)";
  }
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string out = absl::StrCat(tmp ? tmp : "/tmp", "/tokenizer_fixtures");
  const std::string command =
      absl::StrCat("NODE_PATH=", modules, " node runtime/data/testing/make_tokenizer_fixtures.js ",
                   out, " /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0");
  ASSERT_EQ(std::system(command.c_str()), 0) << command;

  auto gpt2 = BpeTokenizer::FromFile(out + "/gpt2/tokenizer.json");
  ASSERT_TRUE(gpt2.ok()) << gpt2.status();
  auto llama3 = BpeTokenizer::FromFile(out + "/llama3/tokenizer.json");
  ASSERT_TRUE(llama3.ok()) << llama3.status();
  EXPECT_EQ((*gpt2)->vocab_size(), 50257);
  EXPECT_EQ((*gpt2)->eos_id(), 50256);
  EXPECT_EQ((*llama3)->vocab_size(), 128256);
  EXPECT_EQ((*llama3)->eos_id(), 128001);

  std::ifstream in(out + "/cases.json");
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json cases = nlohmann::json::parse(text.str());
  ASSERT_GE(cases.size(), 20u);
  int checked = 0;
  for (const auto& c : cases) {
    const BpeTokenizer& tok = c["family"] == "gpt2" ? **gpt2 : **llama3;
    const std::string input = c["text"].get<std::string>();
    const std::vector<int32_t> expected = c["ids"].get<std::vector<int32_t>>();
    absl::StatusOr<std::vector<int32_t>> ids = tok.Encode(input);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, expected) << c["family"] << " text: " << input.substr(0, 80);
    absl::StatusOr<std::string> decoded = tok.Decode(*ids);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, input);
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(cases.size()));
}

}  // namespace
}  // namespace strata
