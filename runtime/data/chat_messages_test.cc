// Conversations in JSONL rendered with the model directory's chat template before tokenization,
// against a hand-computed rendering; errors for a list without a template and for malformed
// messages.
#include "runtime/data/chat_messages.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/data/tokenizer.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

std::string Dir(const std::string& name) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  mkdir(dir.c_str(), 0755);
  return dir;
}

void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

TEST(ChatMessagesTest, MessageListsAreRenderedWithTheDirectorysTemplate) {
  const std::string dir = Dir("model");
  Write(dir + "/tokenizer_config.json", R"({
    "bos_token": "<s>", "eos_token": {"content": "</s>"},
    "chat_template": "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] | trim }}{{ eos_token }}{% endfor %}"
  })");
  absl::StatusOr<MessageRenderer> render = ChatRendererFor(dir);
  ASSERT_TRUE(render.ok()) << render.status();
  ASSERT_TRUE(*render);
  const std::string data = Dir("data") + "/chat.jsonl";
  Write(
      data,
      R"({"messages": [{"role": "user", "content": " hi "}, {"role": "assistant", "content": "yo"}]})"
      "\n");
  ByteTokenizer bytes;
  absl::StatusOr<TokenCorpus> corpus =
      TokenCorpus::Load({data}, CorpusFormat::kJsonl, &bytes, "messages", 257, *render);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  const std::string expected = "<s><|user|>hi</s><|assistant|>yo</s>";
  std::vector<int32_t> want(expected.begin(), expected.end());
  want.push_back(bytes.eos_id());  // The document separator.
  EXPECT_EQ(std::vector<int32_t>(corpus->tokens().begin(), corpus->tokens().end()), want);

  // Without a renderer the list is refused, naming the line and the field.
  absl::StatusOr<TokenCorpus> plain =
      TokenCorpus::Load({data}, CorpusFormat::kJsonl, &bytes, "messages", 257);
  EXPECT_THAT(plain.status().message(), HasSubstr("chat.jsonl:1: field \"messages\" holds a list"));
  // A message without content is refused with its index.
  Write(data, R"({"messages": [{"role": "user"}]})"
              "\n");
  absl::StatusOr<TokenCorpus> bad =
      TokenCorpus::Load({data}, CorpusFormat::kJsonl, &bytes, "messages", 257, *render);
  EXPECT_THAT(bad.status().message(), HasSubstr("message 0 needs string fields"));
}

TEST(ChatMessagesTest, NoTemplateMeansNoRenderer) {
  absl::StatusOr<MessageRenderer> none = ChatRendererFor("");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(*none);
  const std::string dir = Dir("plain");
  Write(dir + "/tokenizer_config.json", R"({"bos_token": "<s>"})");
  absl::StatusOr<MessageRenderer> plain = ChatRendererFor(dir);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(*plain);
  Write(dir + "/tokenizer_config.json", R"({"chat_template": "{% macro x() %}{% endmacro %}"})");
  EXPECT_FALSE(ChatRendererFor(dir).ok());
}

}  // namespace
}  // namespace strata
