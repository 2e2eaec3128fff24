// Causal multi-head attention with grouped-query heads on the CPU. Scores and weighted sums are
// OpenBLAS sgemm calls on strided views of the fused qkv activation, one (batch, head) at a
// time; the causal softmax is a vectorized row kernel.
//
// qkv: (B, T, (NH + 2 NKV) * HD) holding [q heads | k heads | v heads] per row; query head h
// reads kv head h / (NH / NKV). out: (B, T, NH * HD). With a window, scores outside it are
// skipped (probability 0).
#ifndef STRATA_RUNTIME_KERNELS_ATTENTION_H_
#define STRATA_RUNTIME_KERNELS_ATTENTION_H_

#include <cstdint>

namespace strata::kernels {

struct AttentionShape {
  int B = 0, T = 0, NH = 0, NKV = 0, HD = 0;
  int window = 0;  // > 0: each query attends to the last `window` positions including itself.
  int64_t qkv_row() const { return static_cast<int64_t>(NH + 2 * NKV) * HD; }
};

// Floats of scratch attention_forward needs when `att` is null (one T x T score matrix per
// thread it may use).
int64_t AttentionScratchFloats(const AttentionShape& s);

// att: (B, NH, T, T) probabilities saved for backward, or null to use `scratch` (inference).
void attention_forward(float* out, float* att, float* scratch, const float* qkv,
                       const AttentionShape& s);

// dqkv (same shape as qkv) is overwritten; datt_scratch: AttentionScratchFloats floats.
void attention_backward(float* dqkv, float* datt_scratch, const float* dout, const float* qkv,
                        const float* att, const AttentionShape& s);

}  // namespace strata::kernels

#endif  // STRATA_RUNTIME_KERNELS_ATTENTION_H_
