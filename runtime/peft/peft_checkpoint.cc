// See peft_checkpoint.h.
#include "runtime/peft/peft_checkpoint.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/base/shown_value.h"
#include "runtime/base/status_macros.h"
#include "runtime/model/hf_checkpoint.h"
#include "storage/atomic_file.h"
#include "storage/safetensors/safetensors.h"

namespace strata {
namespace {

constexpr char kConfigName[] = "adapter_config.json";
constexpr char kWeightsName[] = "adapter_model.safetensors";

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

namespace {

// The adapters' tensors to dir/adapter_model.safetensors (fp32), then `config_json` to
// dir/adapter_config.json: a directory with a config has its weights.
absl::Status WriteAdapterDir(const TrainableAdapters& adapters, const std::string& config_json,
                             const std::string& dir) {
  STRATA_RETURN_IF_ERROR(MakeDirs(dir));
  std::vector<SafetensorsTensorView> views;
  views.reserve(adapters.tensors().size());
  for (const TensorInfo& t : adapters.tensors()) {
    views.push_back({t.name, t.shape, adapters.weights().data() + t.offset, nullptr});
  }
  STRATA_RETURN_IF_ERROR(WriteSafetensors(absl::StrCat(dir, "/", kWeightsName), views,
                                          {{"format", "pt"}}, SafetensorsDType::kF32));
  return WriteStringToFileAtomically(absl::StrCat(dir, "/", kConfigName), config_json);
}

// Every tensor of `adapters` from dir/adapter_model.safetensors (any float dtype), by name and
// shape; a tensor the adapters lack is an error naming it.
absl::Status ReadAdapterTensors(const std::string& dir, TrainableAdapters& adapters) {
  const std::string weights_path = absl::StrCat(dir, "/", kWeightsName);
  STRATA_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(weights_path));
  std::map<std::string, const TensorInfo*> wanted;
  for (const TensorInfo& t : adapters.tensors()) wanted[t.name] = &t;
  size_t found = 0;
  for (const SafetensorsEntry& entry : file.header().tensors) {
    auto it = wanted.find(entry.name);
    if (it == wanted.end()) {
      return absl::InvalidArgumentError(absl::StrCat(weights_path, ": tensor ",
                                                     ShownValue(entry.name),
                                                     " is not an adapter this config implies"));
    }
    const TensorInfo& t = *it->second;
    if (entry.shape != t.shape) {
      return absl::InvalidArgumentError(
          absl::StrCat(weights_path, ": tensor ", ShownValue(entry.name),
                       " has the wrong shape for ", adapters.Describe()));
    }
    STRATA_RETURN_IF_ERROR(file.ReadF32(entry, adapters.weights().data() + t.offset));
    ++found;
  }
  if (found != wanted.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(weights_path, ": ", wanted.size() - found, " adapter tensors are missing"));
  }
  return absl::OkStatus();
}

// PEFT's PREFIX_TUNING config for `prefix` (prefix_projection off: the embedding is the
// past_key_values itself).
std::string PrefixConfigJson(const PrefixAdapters& prefix, const ModelConfig& model) {
  nlohmann::ordered_json json;
  json["peft_type"] = "PREFIX_TUNING";
  json["task_type"] = "CAUSAL_LM";
  json["num_virtual_tokens"] = prefix.num_tokens();
  json["token_dim"] = prefix.kv_dim();
  json["num_transformer_submodules"] = 1;
  json["num_attention_heads"] = model.n_kv_head;
  json["num_layers"] = model.n_layer;
  json["encoder_hidden_size"] = prefix.kv_dim();
  json["prefix_projection"] = false;
  json["inference_mode"] = true;
  json["base_model_name_or_path"] = nullptr;
  json["revision"] = nullptr;
  return json.dump(2) + "\n";
}

absl::StatusOr<std::unique_ptr<PrefixAdapters>> ParsePrefixConfig(const nlohmann::json& json,
                                                                  const std::string& path,
                                                                  const ParamLayout& base) {
  const ModelConfig& c = base.config();
  if (json.contains("prefix_projection") &&
      !(json["prefix_projection"].is_boolean() && !json["prefix_projection"].get<bool>())) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": prefix_projection (an MLP over the prefix) is not supported"));
  }
  auto integer = [&](const char* key, int64_t expected) -> absl::StatusOr<int64_t> {
    if (!json.contains(key) || !json[key].is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", key, " must be an integer"));
    }
    const int64_t value = json[key].get<int64_t>();
    if (expected >= 0 && value != expected) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": ", key, " is ", value, "; this model needs ", expected));
    }
    return value;
  };
  STRATA_ASSIGN_OR_RETURN(int64_t tokens, integer("num_virtual_tokens", -1));
  STRATA_RETURN_IF_ERROR(integer("num_layers", c.n_layer).status());
  STRATA_RETURN_IF_ERROR(integer("token_dim", c.kv_dim()).status());
  STRATA_RETURN_IF_ERROR(integer("num_attention_heads", c.n_kv_head).status());
  if (json.contains("num_transformer_submodules")) {
    STRATA_RETURN_IF_ERROR(integer("num_transformer_submodules", 1).status());
  }
  if (tokens < 1 || tokens >= c.max_seq_len || tokens > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": num_virtual_tokens must be 1 to ",
                                                   std::min(4096, c.max_seq_len - 1)));
  }
  return PrefixAdapters::Create(base, static_cast<int>(tokens));
}

}  // namespace

absl::Status SaveLoraAdapter(const LoraAdapters& adapters, const ModelConfig& model,
                             const std::string& dir) {
  LoraConfig written = adapters.config();
  if (written.target_modules == std::vector<std::string>{"all-linear"} &&
      model.arch().projections) {
    // "all-linear" here is every linear layer of every block; PEFT's would also take OPT-350m's
    // project_in and project_out, so the file names the modules adapted.
    written.target_modules.clear();
    for (const TensorInfo& t : adapters.tensors()) {
      const std::string module = t.name.substr(0, t.name.rfind(".lora_"));
      const std::string last = module.substr(module.rfind('.') + 1);
      if (std::find(written.target_modules.begin(), written.target_modules.end(), last) ==
          written.target_modules.end()) {
        written.target_modules.push_back(last);
      }
    }
  }
  return WriteAdapterDir(adapters, ToPeftConfigJson(written, model), dir);
}

absl::Status SaveAdapters(const TrainableAdapters& adapters, const ModelConfig& model,
                          const std::string& dir) {
  if (adapters.kind() == TrainableAdapters::Kind::kLora) {
    return SaveLoraAdapter(static_cast<const LoraAdapters&>(adapters), model, dir);
  }
  const auto& prefix = static_cast<const PrefixAdapters&>(adapters);
  return WriteAdapterDir(prefix, PrefixConfigJson(prefix, model), dir);
}

absl::StatusOr<std::unique_ptr<TrainableAdapters>> LoadAdapters(const std::string& dir,
                                                                const ParamLayout& base) {
  const std::string config_path = absl::StrCat(dir, "/", kConfigName);
  STRATA_ASSIGN_OR_RETURN(std::string text, ReadText(config_path));
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || !json.contains("peft_type") || !json["peft_type"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(config_path, ": no peft_type"));
  }
  const std::string type = json["peft_type"].get<std::string>();
  if (type == "LORA") return LoadLoraAdapter(dir, base);
  if (type != "PREFIX_TUNING") {
    return absl::InvalidArgumentError(absl::StrCat(config_path, ": peft_type ", ShownValue(type),
                                                   " is not supported (LORA, PREFIX_TUNING)"));
  }
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<PrefixAdapters> prefix,
                          ParsePrefixConfig(json, config_path, base));
  STRATA_RETURN_IF_ERROR(ReadAdapterTensors(dir, *prefix));
  return prefix;
}

absl::Status LoadAdapterWeights(const std::string& dir, const ParamLayout& base,
                                TrainableAdapters& into) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<TrainableAdapters> saved, LoadAdapters(dir, base));
  bool same = saved->kind() == into.kind() && saved->tensors().size() == into.tensors().size();
  for (size_t i = 0; same && i < saved->tensors().size(); ++i) {
    same = saved->tensors()[i].name == into.tensors()[i].name &&
           saved->tensors()[i].shape == into.tensors()[i].shape;
  }
  if (!same) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " holds ", saved->Describe(),
                                                      ", not the adapters this run trains (",
                                                      into.Describe(), ")"));
  }
  std::copy(saved->weights().begin(), saved->weights().end(), into.weights().begin());
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LoraAdapters>> LoadLoraAdapter(const std::string& dir,
                                                              const ParamLayout& base) {
  const std::string config_path = absl::StrCat(dir, "/", kConfigName);
  STRATA_ASSIGN_OR_RETURN(std::string text, ReadText(config_path));
  STRATA_ASSIGN_OR_RETURN(LoraConfig config, ParsePeftConfig(text, config_path));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<LoraAdapters> adapters,
                          LoraAdapters::Create(base, config));
  STRATA_RETURN_IF_ERROR(ReadAdapterTensors(dir, *adapters));
  return adapters;
}

absl::Status MergeLoraCheckpoint(const std::string& base_dir, const std::string& adapter_dir,
                                 const std::string& out_dir) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Transformer> model, LoadHfCheckpoint(base_dir));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<LoraAdapters> adapters,
                          LoadLoraAdapter(adapter_dir, model->layout()));
  adapters->MergeInto(*model);
  return SaveHfCheckpoint(*model, out_dir);
}

}  // namespace strata
