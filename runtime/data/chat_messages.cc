// See chat_messages.h.
#include "runtime/data/chat_messages.h"

#include <sys/stat.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"
#include "runtime/data/chat_template.h"
#include "runtime/data/tokenizer_directory.h"

namespace strata {
namespace {

// messages: [{"role": "...", "content": "..."}, ...]; errors name the message index.
absl::StatusOr<std::vector<ChatMessage>> ParseMessages(const nlohmann::json& messages) {
  if (!messages.is_array() || messages.empty()) {
    return absl::InvalidArgumentError("messages must be a non-empty list");
  }
  std::vector<ChatMessage> out;
  out.reserve(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    const nlohmann::json& m = messages[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("message ", i, " needs string fields \"role\" and \"content\""));
    }
    out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return out;
}

}  // namespace

absl::StatusOr<MessageRenderer> ChatRendererFor(const std::string& tokenizer_path) {
  struct stat st;
  if (tokenizer_path.empty() || stat(tokenizer_path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return MessageRenderer();
  }
  STRATA_ASSIGN_OR_RETURN(TokenizerConfig config, ReadTokenizerConfig(tokenizer_path));
  if (config.chat_template.empty()) return MessageRenderer();
  STRATA_ASSIGN_OR_RETURN(
      ChatTemplate parsed,
      ChatTemplate::Parse(config.chat_template, absl::StrCat(tokenizer_path, " chat_template")));
  auto shared = std::make_shared<const ChatTemplate>(std::move(parsed));
  const std::string bos = config.bos_token.value_or(""), eos = config.eos_token.value_or("");
  return MessageRenderer(
      [shared, bos, eos](const nlohmann::json& messages) -> absl::StatusOr<std::string> {
        ChatTemplateInputs inputs;
        STRATA_ASSIGN_OR_RETURN(inputs.messages, ParseMessages(messages));
        inputs.bos_token = bos;
        inputs.eos_token = eos;
        return shared->Render(inputs);
      });
}

}  // namespace strata
