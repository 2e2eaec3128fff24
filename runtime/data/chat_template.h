// Renders a Hugging Face chat template (tokenizer_config.json "chat_template", a Jinja text) for a
// list of messages, as transformers' apply_chat_template(tokenize=False) does: the template runs
// with trim_blocks and lstrip_blocks, one trailing newline of the template dropped.
//
// The Jinja subset real templates (LLaMA-3, Qwen2/2.5/3, Mistral-style) use is implemented:
// {{ }}, {% if/elif/else %}, {% for x in xs %} (and `for k, v in d.items()`) with loop.index,
// index0, first, last, length, revindex; {% set x = ... %} and {% set ns.x = ... %} with
// namespace(); {# #}; whitespace control (-); literals (strings, numbers, true/false/none, lists,
// dicts); `and or not`, comparisons, `in`/`not in`, `+ - * / // %`, `~`, `x if c else y`;
// subscripts with negative indexes and slices ([::-1]); tests defined, undefined, none, string,
// number, mapping, sequence, iterable, true, false, even, odd; filters trim, length/count,
// tojson, string, upper, lower, first, last, join, default, items, reverse, list; string methods
// startswith, endswith, strip, lstrip, rstrip, split, upper, lower, replace, title; dict
// methods items, keys, values, get; raise_exception(). Anything else (macros, call blocks,
// set blocks, other filters or tests, ...) is refused when the template is parsed or the
// construct runs, with its name and line.
#ifndef STRATA_RUNTIME_DATA_CHAT_TEMPLATE_H_
#define STRATA_RUNTIME_DATA_CHAT_TEMPLATE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace strata {

struct ChatMessage {
  std::string role;
  std::string content;
};

struct ChatTemplateInputs {
  std::vector<ChatMessage> messages;
  bool add_generation_prompt = false;
  std::string bos_token;  // As the template sees them; "" when the tokenizer has none.
  std::string eos_token;
  // Further template variables (e.g. {"enable_thinking": false}); must be an object or null.
  nlohmann::json extra = nullptr;
};

class ChatTemplate {
 public:
  // `source` names the template in errors.
  static absl::StatusOr<ChatTemplate> Parse(absl::string_view text, absl::string_view source);
  absl::StatusOr<std::string> Render(const ChatTemplateInputs& inputs) const;

  struct Node;

 private:
  std::shared_ptr<const Node> root_;
  std::string source_;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_DATA_CHAT_TEMPLATE_H_
