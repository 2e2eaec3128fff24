// Hugging Face checkpoint directories: config.json plus model.safetensors, or shards listed by
// model.safetensors.index.json. Tensor names and layouts are Hugging Face's for both families
// (GPT-2's Conv1D weights are stored (in, out) and transposed on the way in and out), so a
// directory written by transformers' save_pretrained loads here with the same logits, and one
// written here loads there.
#ifndef STRATA_RUNTIME_MODEL_HF_CHECKPOINT_H_
#define STRATA_RUNTIME_MODEL_HF_CHECKPOINT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/model/transformer.h"
#include "storage/safetensors/safetensors.h"

namespace strata {

// Creates a model from `dir`/config.json and loads its weights.
absl::StatusOr<std::unique_ptr<Transformer>> LoadHfCheckpoint(const std::string& dir,
                                                              Transformer::Options options = {});

// Loads the weights in `dir` into `model` (whose config must match the checkpoint's tensors).
// Every parameter must be present exactly once with the expected shape; tensors the runtime
// does not use are rejected by name, except known buffers (GPT-2's attn.bias/masked_bias,
// rotary inv_freq) and a tied lm_head.weight.
absl::Status LoadHfWeights(const std::string& dir, Transformer& model);

// The same checks up front, then one tensor at a time in any order: streaming a checkpoint
// into storage (offloaded training) without holding it in the arena.
class HfWeightsReader {
 public:
  static absl::StatusOr<HfWeightsReader> Open(const std::string& dir, const Transformer& model);
  // Reads parameter `id` into `out` in the arena's layout (numel floats).
  absl::Status Read(int id, float* out);

 private:
  HfWeightsReader() = default;
  const ParamLayout* layout_ = nullptr;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  // Per parameter id: (index into files_, its entry in that file's header).
  std::vector<std::pair<int, const SafetensorsEntry*>> sources_;
  std::vector<float> staging_;  // Transposition buffer.
};

struct HfSaveOptions {
  // Largest shard in bytes; 0 writes one model.safetensors.
  int64_t max_shard_bytes = 0;
  SafetensorsDType dtype = SafetensorsDType::kF32;
  // When set, block `layer`'s weights (BlockElements() floats in the arena's block layout) are
  // taken from here instead of the arena, one call per block in order; the pointer must stay
  // valid until the next call. Offloaded training writes checkpoints straight from NVMe with it.
  std::function<absl::StatusOr<const float*>(int layer)> block_source;
};

// Writes config.json and the weights into `dir` (created if missing), each file crash-safely.
absl::Status SaveHfCheckpoint(const Transformer& model, const std::string& dir,
                              const HfSaveOptions& options = {});

}  // namespace strata

#endif  // STRATA_RUNTIME_MODEL_HF_CHECKPOINT_H_
