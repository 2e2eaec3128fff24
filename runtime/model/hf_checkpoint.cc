// See hf_checkpoint.h.
#include "runtime/model/hf_checkpoint.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "runtime/base/errno_status.h"
#include "runtime/base/shown_value.h"
#include "runtime/base/status_macros.h"
#include "storage/atomic_file.h"

namespace strata {
namespace {

using Json = nlohmann::json;

constexpr char kIndexName[] = "model.safetensors.index.json";
constexpr char kSingleName[] = "model.safetensors";

bool FileExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The safetensors files of a checkpoint directory, from the index when there is one.
absl::StatusOr<std::vector<std::string>> ShardFiles(const std::string& dir) {
  const std::string index_path = absl::StrCat(dir, "/", kIndexName);
  if (!FileExists(index_path)) {
    const std::string single = absl::StrCat(dir, "/", kSingleName);
    if (!FileExists(single)) {
      return absl::NotFoundError(
          absl::StrCat(dir, " has neither ", kSingleName, " nor ", kIndexName));
    }
    return std::vector<std::string>{single};
  }
  STRATA_ASSIGN_OR_RETURN(std::string text, ReadText(index_path));
  Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object() || !json.contains("weight_map") ||
      !json["weight_map"].is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path, ": expected a JSON object with a \"weight_map\" object"));
  }
  std::set<std::string> files;
  for (auto it = json["weight_map"].begin(); it != json["weight_map"].end(); ++it) {
    if (!it.value().is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": weight_map[", ShownValue(it.key()), "] must be a file name"));
    }
    const std::string file = it.value().get<std::string>();
    if (file.empty() || absl::StrContains(file, "/") || file == "." || file == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": weight_map[", ShownValue(it.key()), "] = ", ShownValue(file),
                       " must name a file in the checkpoint directory"));
    }
    files.insert(file);
  }
  std::vector<std::string> paths;
  for (const std::string& file : files) paths.push_back(absl::StrCat(dir, "/", file));
  return paths;
}

// Tensors Hugging Face checkpoints may carry that are not parameters here.
bool IsIgnorableBuffer(absl::string_view name, const ModelConfig& config) {
  if (absl::EndsWith(name, ".attn.bias") || absl::EndsWith(name, ".attn.masked_bias") ||
      absl::EndsWith(name, "rotary_emb.inv_freq")) {
    return true;
  }
  return config.tie_embeddings && name == "lm_head.weight";
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

absl::StatusOr<HfWeightsReader> HfWeightsReader::Open(const std::string& dir,
                                                      const Transformer& model) {
  const ParamLayout& layout = model.layout();
  STRATA_ASSIGN_OR_RETURN(std::vector<std::string> paths, ShardFiles(dir));
  HfWeightsReader reader;
  reader.layout_ = &layout;
  reader.sources_.assign(layout.tensors().size(), {-1, nullptr});
  reader.files_.reserve(paths.size());
  for (const std::string& path : paths) {
    STRATA_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(path));
    reader.files_.push_back(std::make_unique<SafetensorsFile>(std::move(file)));
    const int file_index = static_cast<int>(reader.files_.size()) - 1;
    for (const SafetensorsEntry& entry : reader.files_.back()->header().tensors) {
      const int id = layout.FindByName(entry.name);
      if (id < 0) {
        if (IsIgnorableBuffer(entry.name, model.config())) continue;
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": tensor \"", entry.name, "\" is not a parameter of this ",
                         ModelFamilyName(model.config().family), " model"));
      }
      const TensorInfo& t = layout.tensor(id);
      if (reader.sources_[id].first >= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor \"", entry.name, "\" appears in ",
                         reader.files_[reader.sources_[id].first]->path(), " and in ", path));
      }
      std::vector<int64_t> expected = t.shape;
      if (t.transposed_in_checkpoint) std::reverse(expected.begin(), expected.end());
      if (entry.shape != expected) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": tensor \"", entry.name, "\" has shape ", ShapeString(entry.shape),
                         ", the config implies ", ShapeString(expected)));
      }
      reader.sources_[id] = {file_index, &entry};
    }
  }
  std::vector<std::string> missing;
  for (const TensorInfo& t : layout.tensors()) {
    if (reader.sources_[t.id].first < 0) missing.push_back(t.name);
  }
  if (!missing.empty()) {
    const size_t shown = std::min<size_t>(missing.size(), 5);
    return absl::InvalidArgumentError(
        absl::StrCat(dir, ": ", missing.size(), " parameters missing from the checkpoint, e.g. ",
                     absl::StrJoin(missing.begin(), missing.begin() + shown, ", ")));
  }
  return reader;
}

absl::Status HfWeightsReader::Read(int id, float* out) {
  const TensorInfo& t = layout_->tensor(id);
  const auto& [file_index, entry] = sources_[id];
  const SafetensorsFile& file = *files_[file_index];
  if (!t.transposed_in_checkpoint) return file.ReadF32(*entry, out);
  // Checkpoint (in, out) -> arena (out, in).
  staging_.resize(t.numel);
  STRATA_RETURN_IF_ERROR(file.ReadF32(*entry, staging_.data()));
  const int64_t rows = t.shape[0], cols = t.shape[1];
  for (int64_t i = 0; i < cols; ++i) {
    for (int64_t o = 0; o < rows; ++o) out[o * cols + i] = staging_[i * rows + o];
  }
  return absl::OkStatus();
}

absl::Status LoadHfWeights(const std::string& dir, Transformer& model) {
  STRATA_ASSIGN_OR_RETURN(HfWeightsReader reader, HfWeightsReader::Open(dir, model));
  for (const TensorInfo& t : model.layout().tensors()) {
    STRATA_RETURN_IF_ERROR(reader.Read(t.id, model.params().data() + t.offset));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Transformer>> LoadHfCheckpoint(const std::string& dir,
                                                              Transformer::Options options) {
  STRATA_ASSIGN_OR_RETURN(ModelConfig config, ReadHfConfig(absl::StrCat(dir, "/config.json")));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Transformer> model, Transformer::Create(config, options));
  STRATA_RETURN_IF_ERROR(LoadHfWeights(dir, *model));
  return model;
}

absl::Status SaveHfCheckpoint(const Transformer& model, const std::string& dir,
                              const HfSaveOptions& options) {
  if (absl::Status s = MakeDirs(dir); !s.ok()) return s;
  const ParamLayout& layout = model.layout();
  const float* params = model.params().data();
  const int elem = SafetensorsDTypeSize(options.dtype);
  // Tensors are produced one at a time as they are written: a block's weights come from the
  // arena or from options.block_source (read once per block, cached while its tensors are
  // written), GPT-2 Conv1D weights are transposed into one reused buffer.
  int cached_block = -1;
  const float* cached = nullptr;
  std::vector<float> transposed;
  auto weights_of = [&](const TensorInfo& t) -> absl::StatusOr<const float*> {
    if (t.block < 0 || !options.block_source) return params + t.offset;
    if (t.block != cached_block) {
      STRATA_ASSIGN_OR_RETURN(cached, options.block_source(t.block));
      cached_block = t.block;
    }
    return cached + (t.offset - layout.BlockBegin(t.block));
  };
  std::vector<std::vector<SafetensorsTensorView>> shards(1);
  int64_t shard_bytes = 0;
  for (const TensorInfo& t : layout.tensors()) {
    SafetensorsTensorView view{t.name, t.shape};
    view.source = [&weights_of, &transposed, &t]() -> absl::StatusOr<const float*> {
      STRATA_ASSIGN_OR_RETURN(const float* w, weights_of(t));
      if (!t.transposed_in_checkpoint) return w;
      const int64_t rows = t.shape[0], cols = t.shape[1];
      transposed.resize(t.numel);
      for (int64_t o = 0; o < rows; ++o) {
        for (int64_t i = 0; i < cols; ++i) transposed[i * rows + o] = w[o * cols + i];
      }
      return transposed.data();
    };
    if (t.transposed_in_checkpoint) view.shape = {t.shape[1], t.shape[0]};
    const int64_t bytes = t.numel * elem;
    if (options.max_shard_bytes > 0 && shard_bytes > 0 &&
        shard_bytes + bytes > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(std::move(view));
    shard_bytes += bytes;
  }
  STRATA_RETURN_IF_ERROR(WriteStringToFileAtomically(absl::StrCat(dir, "/config.json"),
                                                     ToHfConfigJson(model.config())));
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};
  if (options.max_shard_bytes <= 0) {
    STRATA_RETURN_IF_ERROR(
        WriteSafetensors(absl::StrCat(dir, "/", kSingleName), shards[0], metadata, options.dtype));
    unlink(absl::StrCat(dir, "/", kIndexName).c_str());  // A stale index would take precedence.
    return absl::OkStatus();
  }
  Json index;
  index["metadata"]["total_size"] = layout.NumElements() * elem;
  const int n = static_cast<int>(shards.size());
  for (int s = 0; s < n; ++s) {
    const std::string name = absl::StrFormat("model-%05d-of-%05d.safetensors", s + 1, n);
    STRATA_RETURN_IF_ERROR(
        WriteSafetensors(absl::StrCat(dir, "/", name), shards[s], metadata, options.dtype));
    for (const SafetensorsTensorView& view : shards[s]) index["weight_map"][view.name] = name;
  }
  // The index is written last: it commits the set of shards.
  STRATA_RETURN_IF_ERROR(
      WriteStringToFileAtomically(absl::StrCat(dir, "/", kIndexName), index.dump(2) + "\n"));
  unlink(absl::StrCat(dir, "/", kSingleName).c_str());
  return absl::OkStatus();
}

}  // namespace strata
