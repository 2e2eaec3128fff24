// See peft_checkpoint.h.
#include "runtime/peft/peft_checkpoint.h"

#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
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

absl::Status SaveLoraAdapter(const LoraAdapters& adapters, const ModelConfig& model,
                             const std::string& dir) {
  STRATA_RETURN_IF_ERROR(MakeDirs(dir));
  std::vector<SafetensorsTensorView> views;
  views.reserve(adapters.tensors().size());
  for (const TensorInfo& t : adapters.tensors()) {
    views.push_back({t.name, t.shape, adapters.weights().data() + t.offset, nullptr});
  }
  STRATA_RETURN_IF_ERROR(WriteSafetensors(absl::StrCat(dir, "/", kWeightsName), views,
                                          {{"format", "pt"}}, SafetensorsDType::kF32));
  // The config last: a directory with a config has its weights.
  return WriteStringToFileAtomically(absl::StrCat(dir, "/", kConfigName),
                                     ToPeftConfigJson(adapters.config(), model));
}

absl::StatusOr<std::unique_ptr<LoraAdapters>> LoadLoraAdapter(const std::string& dir,
                                                              const ParamLayout& base) {
  const std::string config_path = absl::StrCat(dir, "/", kConfigName);
  STRATA_ASSIGN_OR_RETURN(std::string text, ReadText(config_path));
  STRATA_ASSIGN_OR_RETURN(LoraConfig config, ParsePeftConfig(text, config_path));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<LoraAdapters> adapters,
                          LoraAdapters::Create(base, config));
  const std::string weights_path = absl::StrCat(dir, "/", kWeightsName);
  STRATA_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(weights_path));
  std::map<std::string, const TensorInfo*> wanted;
  for (const TensorInfo& t : adapters->tensors()) wanted[t.name] = &t;
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
      return absl::InvalidArgumentError(absl::StrCat(weights_path, ": tensor ",
                                                     ShownValue(entry.name),
                                                     " has the wrong shape for r = ", config.r));
    }
    STRATA_RETURN_IF_ERROR(file.ReadF32(entry, adapters->weights().data() + t.offset));
    ++found;
  }
  if (found != wanted.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(weights_path, ": ", wanted.size() - found, " adapter tensors are missing"));
  }
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
