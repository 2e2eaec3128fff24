// LoRA adapters on a transformer's block matmuls: for each targeted linear layer W (out, in),
// A (r, in) and B (out, r), and the layer computes W x + (alpha / r) B A x. The adapters' own
// fp32 arena and tensor table (PEFT's tensor names) are what FO and ZO train while the base
// weights stay frozen; the model calls Forward/Backward right after each base matmul
// (Transformer::BlockAdapters).
//
// A targeted layer is found by its Hugging Face module name in the base ParamLayout; its rows
// in the fused matmul of its site (q, k and v share the QKV matmul; gate and up the MLP's first)
// come from the tensor's place in the block. The cost per adapted layer and token is
// 2 r (in + out) flops forward: at r = 8 about 1-2 % of the base matmuls.
#ifndef STRATA_RUNTIME_PEFT_LORA_ADAPTERS_H_
#define STRATA_RUNTIME_PEFT_LORA_ADAPTERS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/base/aligned_buffer.h"
#include "runtime/model/param_layout.h"
#include "runtime/model/transformer.h"
#include "runtime/peft/lora_config.h"
#include "runtime/peft/trainable_adapters.h"

namespace strata {

class LoraAdapters final : public TrainableAdapters {
 public:
  // Fails when a target matches no linear layer of the model.
  static absl::StatusOr<std::unique_ptr<LoraAdapters>> Create(const ParamLayout& base,
                                                              const LoraConfig& config);

  const LoraConfig& config() const { return config_; }
  Kind kind() const override { return Kind::kLora; }
  std::string Describe() const override;
  // The arena holds A then B of each adapted layer, block by block; names as PEFT saves them
  // ("base_model.model.<module>.lora_A.weight"), shapes (r, in) and (out, r).

  // PEFT's initialization from `seed`: A uniform in +-1/sqrt(in) (kaiming_uniform with
  // a = sqrt(5)), B zero, so training starts at the base model.
  void Initialize(uint64_t seed);

  // base W += (alpha / r) B A for every adapted layer, in `model`'s arena (which must have the
  // layout the adapters were made for).
  void MergeInto(Transformer& model) const;

  void Forward(int layer, AdaptedSite site, const float* x, int64_t N, float* out,
               int stream) override;
  void Backward(int layer, AdaptedSite site, const float* x, const float* dout, int64_t N,
                float* dx) override;

 private:
  struct Adapter {
    int layer = 0;
    AdaptedSite site = AdaptedSite::kQkv;
    int64_t out_begin = 0;    // First row of the site's output the layer writes.
    int64_t out_rows = 0;     // The layer's out features.
    int64_t in = 0;           // The site's input width.
    int64_t out_width = 0;    // The site's full output width.
    int64_t base_offset = 0;  // The layer's weight in the base arena.
    int a = 0, b = 0;         // Tensor ids of A and B.
  };

  LoraAdapters(const ParamLayout& base, LoraConfig config)
      : base_(base), config_(std::move(config)) {}
  // Scratch of `floats` for `stream` (2 streams + backward).
  float* Scratch(int slot, int64_t floats);

  const ParamLayout& base_;
  LoraConfig config_;
  std::vector<Adapter> adapters_;
  // adapters_ indices of (layer, site): by_site_[layer * 4 + site].
  std::vector<std::vector<int>> by_site_;
  AlignedBuffer scratch_[3];
};

}  // namespace strata

#endif  // STRATA_RUNTIME_PEFT_LORA_ADAPTERS_H_
