// See prompt_template.h.
#include "runtime/task/prompt_template.h"

#include <algorithm>
#include <cctype>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "runtime/base/status_macros.h"

namespace strata::task {
namespace {

using Json = nlohmann::json;

absl::Status TemplateError(const std::string& text, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("template \"", absl::CEscape(text), "\": ", what));
}

// Applies one filter (its name and the text inside its parentheses) to `value`.
absl::StatusOr<std::string> ApplyFilter(const std::string& text, const std::string& filter,
                                        const Json* raw, std::string value,
                                        const std::string* candidate) {
  std::string name = filter, arg;
  bool has_arg = false;
  if (const size_t open = filter.find('('); open != std::string::npos) {
    if (filter.back() != ')') return TemplateError(text, absl::StrCat("filter ", filter, ": no )"));
    name = filter.substr(0, open);
    arg = filter.substr(open + 1, filter.size() - open - 2);
    has_arg = true;
  }
  if (name == "strip" && !has_arg) return std::string(absl::StripAsciiWhitespace(value));
  if (name == "lower" && !has_arg) return absl::AsciiStrToLower(value);
  if (name == "upper" && !has_arg) return absl::AsciiStrToUpper(value);
  if (name == "lower_first" && !has_arg) {
    if (!value.empty()) value[0] = absl::ascii_tolower(value[0]);
    return value;
  }
  if (name == "upper_first" && !has_arg) {
    if (!value.empty()) value[0] = absl::ascii_toupper(value[0]);
    return value;
  }
  if (name == "lower_first_word" && !has_arg) {  // "The sun" -> "the sun"; "I put" stays.
    const size_t end = std::min(value.find(' '), value.size());
    if (value.substr(0, end) == "I") return value;
    for (size_t i = 0; i < end; ++i) value[i] = absl::ascii_tolower(value[i]);
    return value;
  }
  if (name == "drop_last" && !has_arg) {
    if (!value.empty()) value.pop_back();
    return value;
  }
  if (name == "end_with" && has_arg) {
    if (!absl::EndsWith(value, arg)) value += arg;
    return value;
  }
  if (name == "replace" && has_arg) {
    const size_t comma = arg.find(',');
    if (comma == std::string::npos || comma == 0) {
      return TemplateError(text, absl::StrCat("replace(", arg, "): expected replace(from,to)"));
    }
    return absl::StrReplaceAll(value, {{arg.substr(0, comma), arg.substr(comma + 1)}});
  }
  if (name == "rstrip_punct" && !has_arg) {
    while (!value.empty() && (value.back() == '.' || value.back() == '?' || value.back() == '!' ||
                              absl::ascii_isspace(value.back()))) {
      value.pop_back();
    }
    return value;
  }
  if (name == "join" && !has_arg) {
    if (raw == nullptr || !raw->is_array()) return value;
    std::vector<std::string> parts;
    for (const Json& item : *raw) {
      STRATA_ASSIGN_OR_RETURN(std::string part, ScalarText(item, "join"));
      parts.push_back(std::move(part));
    }
    return absl::StrJoin(parts, ", ");
  }
  if (name == "map" && has_arg) {
    for (absl::string_view pair : absl::StrSplit(arg, ',')) {
      const size_t eq = pair.find('=');
      if (eq == absl::string_view::npos) {
        return TemplateError(text, absl::StrCat("map(", arg, "): expected key=value pairs"));
      }
      if (pair.substr(0, eq) == value) return std::string(pair.substr(eq + 1));
    }
    return TemplateError(text, absl::StrCat("map(", arg, ") has no entry for \"", value, "\""));
  }
  if (name == "fill" && has_arg) {
    if (candidate == nullptr) {
      return TemplateError(text, absl::StrCat("fill(", arg, ") outside a candidate template"));
    }
    if (arg.empty()) return TemplateError(text, "fill() needs the mark to replace");
    return absl::StrReplaceAll(value, {{arg, *candidate}});
  }
  return TemplateError(text, absl::StrCat("unknown filter \"", filter, "\""));
}

}  // namespace

const Json* FieldAt(const Json& example, const std::string& path) {
  const Json* node = &example;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (!node->is_object()) return nullptr;
    auto it = node->find(std::string(part));
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

absl::StatusOr<std::string> ScalarText(const Json& value, const std::string& path) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number() || value.is_boolean()) return value.dump();
  return absl::InvalidArgumentError(
      absl::StrCat("field ", path, " is ", value.type_name(), ", not a string, number or bool"));
}

absl::StatusOr<std::string> RenderTemplate(const std::string& text, const Json& example,
                                           const std::string* candidate) {
  std::string out;
  out.reserve(text.size() * 2);
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '}') {
      if (i + 1 < text.size() && text[i + 1] == '}') {
        out.push_back('}');
        ++i;
        continue;
      }
      return TemplateError(text, absl::StrCat("unmatched } at offset ", i));
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '{') {
      out.push_back('{');
      ++i;
      continue;
    }
    const size_t close = text.find('}', i);
    if (close == std::string::npos) {
      return TemplateError(text, absl::StrCat("unclosed { at offset ", i));
    }
    const std::string reference = text.substr(i + 1, close - i - 1);
    i = close;
    std::vector<std::string> parts = absl::StrSplit(reference, '|');
    const std::string path(absl::StripAsciiWhitespace(parts[0]));
    if (path.empty()) return TemplateError(text, "an empty {} reference");
    const Json* raw = nullptr;
    std::string value;
    if (path == "candidate") {
      if (candidate == nullptr) {
        return TemplateError(text, "{candidate} is only for candidate templates");
      }
      value = *candidate;
    } else {
      raw = FieldAt(example, path);
      if (raw == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("the example has no field \"", path, "\" (template \"",
                         absl::CEscape(text), "\")"));
      }
      const Json& scalar = raw->is_array() && !raw->empty() ? raw->front() : *raw;
      STRATA_ASSIGN_OR_RETURN(value, ScalarText(scalar, path));
    }
    for (size_t f = 1; f < parts.size(); ++f) {
      const std::string filter(absl::StripAsciiWhitespace(parts[f]));
      STRATA_ASSIGN_OR_RETURN(value, ApplyFilter(text, filter, raw, std::move(value), candidate));
    }
    out += value;
  }
  return out;
}

}  // namespace strata::task
