// bf16 weight storage with fp32 compute: the model's parameters held as bfloat16 (half the
// bytes), widened to fp32 on the fly for the loss-only forward — the resident tensors
// (embeddings, final norm, head) once per call, each block into one block-sized fp32 buffer just
// before it runs. Offloaded training uses the same widening on blocks streamed from slower
// tiers. Rounding is to nearest even, so a bf16 copy of fp32 weights changes each weight by at
// most 2^-9 relative.
#ifndef STRATA_RUNTIME_MODEL_BF16_WEIGHTS_H_
#define STRATA_RUNTIME_MODEL_BF16_WEIGHTS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/base/aligned_buffer.h"
#include "runtime/model/transformer.h"

namespace strata {

// dst[i] = src[i] widened (exact); vectorized.
void Bf16ToF32(float* dst, const uint16_t* src, int64_t n);
// dst[i] = src[i] rounded to nearest even (NaN stays NaN); vectorized.
void F32ToBf16(uint16_t* dst, const float* src, int64_t n);

class Bf16Weights {
 public:
  // Rounds `params` (laid out as `layout`) to bf16.
  Bf16Weights(const ParamLayout& layout, absl::Span<const float> params);

  int64_t StorageBytes() const { return static_cast<int64_t>(weights_.size()) * 2; }
  absl::Span<const uint16_t> weights() const { return weights_; }
  // The fp32 values these weights compute with.
  void ToF32(absl::Span<float> out) const;

  // model.Loss with these weights; `model` supplies the architecture and activations.
  absl::StatusOr<float> Loss(Transformer& model, absl::Span<const int32_t> tokens,
                             absl::Span<const int32_t> targets, int B, int T);

 private:
  const ParamLayout& layout_;
  std::vector<uint16_t> weights_;
  AlignedBuffer resident_;  // fp32 arena-layout buffer; only non-block tensors are filled.
  AlignedBuffer block_;     // One block in fp32.
};

}  // namespace strata

#endif  // STRATA_RUNTIME_MODEL_BF16_WEIGHTS_H_
