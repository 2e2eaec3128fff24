// Prompt templates: text with {path} references to an example's fields, rendered for one
// example. A path is a field name or a dotted path into nested objects (answers.text); a list
// value renders as its first element unless a filter says otherwise. Filters follow a `|`:
//   strip          trims whitespace          lower / upper     case
//   lower_first    lowercases the first letter (COPA's choices)
//   upper_first    uppercases it
//   lower_first_word  lowercases the first word unless it is "I" (MeZO's COPA choices)
//   rstrip_punct   drops trailing . ? ! and spaces
//   drop_last      drops the last character (MeZO's COPA premise[:-1])
//   end_with(x)    appends x unless the value ends with it (BoolQ's "?")
//   replace(a,b)   replaces every a by b (the first comma separates them)
//   join           a list joined with ", "
//   map(a=x,b=y)   replaces the whole value a by x, b by y (a value not listed is an error)
//   fill(@mark)    replaces @mark inside the value by the current {candidate} (ReCoRD's query)
// `{{` and `}}` are literal braces. Errors name the template and the example's missing field.
#ifndef STRATA_RUNTIME_TASK_PROMPT_TEMPLATE_H_
#define STRATA_RUNTIME_TASK_PROMPT_TEMPLATE_H_

#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace strata::task {

// `candidate`: the value {candidate} (and fill(...)) stand for; null when there is none.
absl::StatusOr<std::string> RenderTemplate(const std::string& text, const nlohmann::json& example,
                                           const std::string* candidate = nullptr);

// The JSON value at a dotted path, or null when a component is missing.
const nlohmann::json* FieldAt(const nlohmann::json& example, const std::string& path);

// A scalar JSON value as text: strings as they are, numbers and booleans as JSON writes them
// ("0", "1.5", "true"); anything else is an error naming `path`.
absl::StatusOr<std::string> ScalarText(const nlohmann::json& value, const std::string& path);

}  // namespace strata::task

#endif  // STRATA_RUNTIME_TASK_PROMPT_TEMPLATE_H_
