// See bf16_weights.h.
#include "runtime/model/bf16_weights.h"

#include <bit>
#include <cstring>

#include "runtime/base/status_macros.h"
#include "runtime/base/thread_pool.h"
#include "runtime/kernels/cpu_dispatch.h"

namespace strata {
namespace {

constexpr int64_t kChunk = 1 << 16;

STRATA_CPU_CLONES void WidenSpan(float* dst, const uint16_t* src, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(src[i]) << 16;
    std::memcpy(dst + i, &bits, 4);
  }
}

STRATA_CPU_CLONES void NarrowSpan(uint16_t* dst, const float* src, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, src + i, 4);
    const bool nan = (bits & 0x7fffffffu) > 0x7f800000u;
    const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
    dst[i] = static_cast<uint16_t>(nan ? ((bits >> 16) | 0x40u) : rounded);
  }
}

}  // namespace

void Bf16ToF32(float* dst, const uint16_t* src, int64_t n) {
  ParallelFor((n + kChunk - 1) / kChunk, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const int64_t i = c * kChunk;
      WidenSpan(dst + i, src + i, std::min(kChunk, n - i));
    }
  });
}

void F32ToBf16(uint16_t* dst, const float* src, int64_t n) {
  ParallelFor((n + kChunk - 1) / kChunk, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const int64_t i = c * kChunk;
      NarrowSpan(dst + i, src + i, std::min(kChunk, n - i));
    }
  });
}

Bf16Weights::Bf16Weights(const ParamLayout& layout, absl::Span<const float> params)
    : layout_(layout), weights_(layout.NumElements()) {
  F32ToBf16(weights_.data(), params.data(), layout.NumElements());
}

void Bf16Weights::ToF32(absl::Span<float> out) const {
  Bf16ToF32(out.data(), weights_.data(), static_cast<int64_t>(weights_.size()));
}

absl::StatusOr<float> Bf16Weights::Loss(Transformer& model, absl::Span<const int32_t> tokens,
                                        absl::Span<const int32_t> targets, int B, int T) {
  if (resident_.size() == 0) {
    resident_.Resize(layout_.NumElements());
    block_.Resize(layout_.BlockElements());
  }
  // The resident tensors sit before the first block and after the last one.
  const int64_t first_block = layout_.BlockBegin(0);
  const int64_t last_block_end = layout_.BlockEnd(layout_.config().n_layer - 1);
  Bf16ToF32(resident_.data(), weights_.data(), first_block);
  Bf16ToF32(resident_.data() + last_block_end, weights_.data() + last_block_end,
            layout_.NumElements() - last_block_end);
  STRATA_RETURN_IF_ERROR(model.BeginForward(resident_.data(), tokens, B, T));
  for (int l = 0; l < layout_.config().n_layer; ++l) {
    Bf16ToF32(block_.data(), weights_.data() + layout_.BlockBegin(l), layout_.BlockElements());
    model.BlockForward(l, block_.data());
  }
  return model.EndForward(resident_.data(), targets);
}

}  // namespace strata
