// See lora_config.h.
#include "runtime/peft/lora_config.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/base/shown_value.h"

namespace strata {
namespace {

using Json = nlohmann::json;

absl::Status Error(absl::string_view source, absl::string_view key, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": \"", key, "\" ", what));
}

// A key whose only supported value is `benign` (absent and null are fine too).
absl::Status RefuseUnless(const Json& json, absl::string_view source, const char* key,
                          const Json& benign) {
  if (!json.contains(key) || json[key].is_null() || json[key] == benign) return absl::OkStatus();
  if (json[key].is_array() && json[key].empty() && benign.is_array()) return absl::OkStatus();
  if (json[key].is_object() && json[key].empty() && benign.is_object()) return absl::OkStatus();
  return Error(source, key, absl::StrCat("= ", ShownValue(json[key].dump()), " is not supported"));
}

}  // namespace

std::vector<std::string> DefaultLoraTargets(ModelFamily family) {
  if (family == ModelFamily::kGpt2) return {"c_attn"};
  return {"q_proj", "v_proj"};
}

absl::StatusOr<LoraConfig> ParsePeftConfig(absl::string_view json_text, absl::string_view source) {
  const Json json = Json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  if (!json.contains("peft_type") || json["peft_type"] != "LORA") {
    return Error(source, "peft_type",
                 absl::StrCat("= ", ShownValue(json.value("peft_type", Json()).dump()),
                              " is not supported (LORA)"));
  }
  LoraConfig c;
  if (!json.contains("r") || !json["r"].is_number_integer() || json["r"].get<int64_t>() <= 0 ||
      json["r"].get<int64_t>() > 4096) {
    return Error(source, "r", "must be an integer in [1, 4096]");
  }
  c.r = json["r"].get<int>();
  c.alpha = 8.0f;  // PEFT's default lora_alpha.
  if (json.contains("lora_alpha")) {
    if (!json["lora_alpha"].is_number() || !(json["lora_alpha"].get<double>() > 0)) {
      return Error(source, "lora_alpha", "must be a positive number");
    }
    c.alpha = json["lora_alpha"].get<float>();
  }
  const Json& targets = json.contains("target_modules") ? json["target_modules"] : Json();
  if (targets.is_string()) {
    // A string is a regular expression to PEFT, except its "all-linear" shorthand.
    if (targets != "all-linear") {
      return Error(source, "target_modules",
                   "as a regular expression is not supported (give a list of module names)");
    }
    c.target_modules = {"all-linear"};
  } else if (targets.is_array() && !targets.empty()) {
    for (const Json& t : targets) {
      if (!t.is_string() || t.get<std::string>().empty()) {
        return Error(source, "target_modules", "must list module names");
      }
      c.target_modules.push_back(t.get<std::string>());
    }
  } else {
    return Error(source, "target_modules", "must be a non-empty list or \"all-linear\"");
  }
  for (const auto& [key, benign] :
       std::vector<std::pair<const char*, Json>>{{"bias", "none"},
                                                 {"use_rslora", false},
                                                 {"use_dora", false},
                                                 {"modules_to_save", Json::array()},
                                                 {"layers_to_transform", Json::array()},
                                                 {"rank_pattern", Json::object()},
                                                 {"alpha_pattern", Json::object()},
                                                 {"exclude_modules", Json::array()},
                                                 {"layer_replication", Json::array()}}) {
    if (absl::Status s = RefuseUnless(json, source, key, benign); !s.ok()) return s;
  }
  return c;
}

std::string ToPeftConfigJson(const LoraConfig& c, const ModelConfig& model) {
  Json json;
  json["peft_type"] = "LORA";
  json["task_type"] = "CAUSAL_LM";
  json["r"] = c.r;
  json["lora_alpha"] = c.alpha;
  json["lora_dropout"] = 0.0;
  json["bias"] = "none";
  json["fan_in_fan_out"] = model.family == ModelFamily::kGpt2;  // GPT-2's Conv1D layout.
  json["inference_mode"] = true;
  json["use_rslora"] = false;
  json["use_dora"] = false;
  json["init_lora_weights"] = true;
  json["modules_to_save"] = nullptr;
  if (c.target_modules.size() == 1 && c.target_modules[0] == "all-linear") {
    json["target_modules"] = "all-linear";
  } else {
    json["target_modules"] = c.target_modules;
  }
  json["base_model_name_or_path"] = nullptr;
  return json.dump(2) + "\n";
}

}  // namespace strata
