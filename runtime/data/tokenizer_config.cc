// See tokenizer_config.h.
#include "runtime/data/tokenizer_config.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/base/shown_value.h"
#include "runtime/base/status_macros.h"

namespace strata {
namespace {

using Json = nlohmann::json;

absl::Status Bad(absl::string_view source, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", what));
}

// A special token written as "text", {"content": "text", ...} or null.
absl::StatusOr<std::optional<std::string>> TokenText(const Json& value, absl::string_view source,
                                                     absl::string_view field) {
  if (value.is_null()) return std::optional<std::string>();
  if (value.is_string()) return std::optional<std::string>(value.get<std::string>());
  if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    return std::optional<std::string>(value["content"].get<std::string>());
  }
  return Bad(source, absl::StrCat(field, " must be a string, {\"content\": ...} or null"));
}

absl::StatusOr<std::optional<bool>> Flag(const Json& json, absl::string_view source,
                                         const char* field) {
  if (!json.contains(field) || json[field].is_null()) return std::optional<bool>();
  if (!json[field].is_boolean()) return Bad(source, absl::StrCat(field, " must be true or false"));
  return std::optional<bool>(json[field].get<bool>());
}

}  // namespace

absl::StatusOr<TokenizerConfig> ParseTokenizerConfig(absl::string_view text,
                                                     absl::string_view source) {
  const Json json = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return Bad(source, "not a JSON object");
  TokenizerConfig config;
  config.source = std::string(source);
  const std::pair<const char*, std::optional<std::string>*> specials[] = {
      {"bos_token", &config.bos_token},
      {"eos_token", &config.eos_token},
      {"unk_token", &config.unk_token},
      {"pad_token", &config.pad_token}};
  for (const auto& [field, out] : specials) {
    if (!json.contains(field)) continue;
    STRATA_ASSIGN_OR_RETURN(*out, TokenText(json[field], source, field));
  }
  if (json.contains("additional_special_tokens") && !json["additional_special_tokens"].is_null()) {
    const Json& list = json["additional_special_tokens"];
    if (!list.is_array()) return Bad(source, "additional_special_tokens must be an array");
    for (size_t i = 0; i < list.size(); ++i) {
      STRATA_ASSIGN_OR_RETURN(
          std::optional<std::string> token,
          TokenText(list[i], source, absl::StrCat("additional_special_tokens[", i, "]")));
      if (token.has_value()) config.additional_special_tokens.push_back(*token);
    }
  }
  STRATA_ASSIGN_OR_RETURN(config.add_bos_token, Flag(json, source, "add_bos_token"));
  STRATA_ASSIGN_OR_RETURN(config.add_eos_token, Flag(json, source, "add_eos_token"));
  STRATA_ASSIGN_OR_RETURN(config.add_prefix_space, Flag(json, source, "add_prefix_space"));
  STRATA_ASSIGN_OR_RETURN(std::optional<bool> split, Flag(json, source, "split_special_tokens"));
  if (split.value_or(false)) return Bad(source, "split_special_tokens true is not supported");
  if (json.contains("added_tokens_decoder") && !json["added_tokens_decoder"].is_null()) {
    const Json& decoder = json["added_tokens_decoder"];
    if (!decoder.is_object()) return Bad(source, "added_tokens_decoder must be an object");
    for (auto it = decoder.begin(); it != decoder.end(); ++it) {
      const std::string where = absl::StrCat("added_tokens_decoder[", ShownValue(it.key()), "]");
      BpeModel::AddedToken a;
      if (!absl::SimpleAtoi(it.key(), &a.id) || a.id < 0 || a.id > (1 << 24)) {
        return Bad(source, absl::StrCat(where, ": the key must be a token id"));
      }
      const Json& t = it.value();
      if (!t.is_object() || !t.contains("content") || !t["content"].is_string()) {
        return Bad(source, absl::StrCat(where, " needs a string \"content\""));
      }
      if (t.value("single_word", false)) {
        return Bad(source, absl::StrCat(where, ".single_word is not supported"));
      }
      a.content = t["content"].get<std::string>();
      a.special = t.value("special", false);
      a.lstrip = t.value("lstrip", false);
      a.rstrip = t.value("rstrip", false);
      config.added_tokens.push_back(std::move(a));
    }
  }
  if (json.contains("chat_template") && !json["chat_template"].is_null()) {
    const Json& t = json["chat_template"];
    if (t.is_string()) {
      config.chat_template = t.get<std::string>();
    } else if (t.is_array()) {
      for (const Json& named : t) {
        if (named.is_object() && named.value("name", "") == "default" &&
            named.contains("template") && named["template"].is_string()) {
          config.chat_template = named["template"].get<std::string>();
        }
      }
    } else {
      return Bad(source, "chat_template must be a string or a list of {name, template}");
    }
  }
  return config;
}

void OverrideSpecialTokens(const TokenizerConfig& from, TokenizerConfig* into) {
  for (auto field : {&TokenizerConfig::bos_token, &TokenizerConfig::eos_token,
                     &TokenizerConfig::unk_token, &TokenizerConfig::pad_token}) {
    if ((from.*field).has_value()) into->*field = from.*field;
  }
  if (!from.additional_special_tokens.empty()) {
    into->additional_special_tokens = from.additional_special_tokens;
  }
  into->source = absl::StrCat(into->source, " + ", from.source);
}

absl::Status ApplyTokenizerConfig(const TokenizerConfig& config, BpeModel* model) {
  const std::string& source = config.source;
  auto added_with_id = [&](int32_t id) -> BpeModel::AddedToken* {
    for (BpeModel::AddedToken& a : model->added_tokens) {
      if (a.id == id) return &a;
    }
    return nullptr;
  };
  for (const BpeModel::AddedToken& a : config.added_tokens) {
    const std::string where = absl::StrCat("added_tokens_decoder[\"", a.id, "\"]");
    if (const BpeModel::AddedToken* existing = added_with_id(a.id); existing != nullptr) {
      if (existing->content != a.content) {
        return Bad(source,
                   absl::StrCat(where, " names another token than the tokenizer's id ", a.id));
      }
      continue;
    }
    auto it = model->vocab.find(a.content);
    if (it != model->vocab.end() && it->second != a.id) {
      return Bad(source, absl::StrCat(where, " is in the vocabulary as id ", it->second));
    }
    model->added_tokens.push_back(a);
  }
  // The id of a special token's text; it becomes an added token so BPE never splits it.
  auto special_id = [&](const std::string& text,
                        absl::string_view field) -> absl::StatusOr<int32_t> {
    for (const BpeModel::AddedToken& a : model->added_tokens) {
      if (a.content == text) return a.id;
    }
    auto it = model->vocab.find(text);
    if (it == model->vocab.end()) {
      return Bad(source, absl::StrCat(field, " is neither in the vocabulary nor an added token"));
    }
    BpeModel::AddedToken a;
    a.content = text;
    a.id = it->second;
    model->added_tokens.push_back(std::move(a));
    return it->second;
  };
  const std::pair<const char*, const std::optional<std::string>*> specials[] = {
      {"bos_token", &config.bos_token},
      {"eos_token", &config.eos_token},
      {"unk_token", &config.unk_token},
      {"pad_token", &config.pad_token}};
  int32_t bos = -1, eos = -1;
  for (const auto& [field, text] : specials) {
    if (!text->has_value()) continue;
    STRATA_ASSIGN_OR_RETURN(int32_t id, special_id(**text, field));
    if (text == &config.bos_token) bos = id;
    if (text == &config.eos_token) eos = id;
  }
  for (size_t i = 0; i < config.additional_special_tokens.size(); ++i) {
    STRATA_RETURN_IF_ERROR(special_id(config.additional_special_tokens[i],
                                      absl::StrCat("additional_special_tokens[", i, "]"))
                               .status());
  }
  if (bos >= 0) model->bos_id = bos;
  if (eos >= 0) model->eos_id = eos;
  if (config.add_bos_token.has_value()) {
    std::vector<int32_t>& prefix = model->prefix_ids;
    if (!prefix.empty() && bos >= 0 && prefix.front() == bos) prefix.erase(prefix.begin());
    if (*config.add_bos_token) {
      if (bos < 0) return Bad(source, "add_bos_token is true but bos_token is not set");
      prefix.insert(prefix.begin(), bos);
    }
  }
  if (config.add_eos_token.has_value()) {
    std::vector<int32_t>& suffix = model->suffix_ids;
    if (!suffix.empty() && eos >= 0 && suffix.back() == eos) suffix.pop_back();
    if (*config.add_eos_token) {
      if (eos < 0) return Bad(source, "add_eos_token is true but eos_token is not set");
      suffix.push_back(eos);
    }
  }
  if (config.add_prefix_space.has_value()) model->add_prefix_space = *config.add_prefix_space;
  return absl::OkStatus();
}

}  // namespace strata
