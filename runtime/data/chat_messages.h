// Conversations in training data: a JSONL field holding a list of {"role", "content"} messages
// is rendered to text with the model's chat template (tokenizer_config.json "chat_template", or
// chat_template.jinja beside it) before tokenization, as transformers'
// apply_chat_template(messages, tokenize=False) renders it (no generation prompt: the data holds
// the replies).
#ifndef STRATA_RUNTIME_DATA_CHAT_MESSAGES_H_
#define STRATA_RUNTIME_DATA_CHAT_MESSAGES_H_

#include <string>

#include "absl/status/statusor.h"
#include "runtime/data/dataset.h"

namespace strata {

// The renderer for the tokenizer at `tokenizer_path` (a model directory): null when the path is
// empty or a file, or when the directory has no chat template. A template that does not parse
// is an error naming its file and line.
absl::StatusOr<MessageRenderer> ChatRendererFor(const std::string& tokenizer_path);

}  // namespace strata

#endif  // STRATA_RUNTIME_DATA_CHAT_MESSAGES_H_
