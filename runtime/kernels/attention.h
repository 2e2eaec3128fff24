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
  // A cached prefix (prefix tuning): `prefix` keys and values at positions 0 .. prefix - 1 that
  // every sequence of the batch sees before its own T tokens (which then sit at positions
  // prefix .. prefix + T - 1). Row i of prefix_k / prefix_v (prefix_ld floats apart) holds the
  // NKV heads' HD-wide vectors. attention_backward adds their gradients to dprefix_k /
  // dprefix_v (same layout) when those are set.
  int prefix = 0;
  const float* prefix_k = nullptr;
  const float* prefix_v = nullptr;
  int64_t prefix_ld = 0;
  float* dprefix_k = nullptr;
  float* dprefix_v = nullptr;
  int64_t qkv_row() const { return static_cast<int64_t>(NH + 2 * NKV) * HD; }
};

// Floats of scratch attention_forward needs when `att` is null (one T x (prefix + T) score
// matrix).
int64_t AttentionScratchFloats(const AttentionShape& s);

// att: (B, NH, T, prefix + T) probabilities saved for backward, or null to use `scratch`
// (inference).
void attention_forward(float* out, float* att, float* scratch, const float* qkv,
                       const AttentionShape& s);

// dqkv (same shape as qkv) is overwritten; datt_scratch: AttentionScratchFloats floats.
void attention_backward(float* dqkv, float* datt_scratch, const float* dout, const float* qkv,
                        const float* att, const AttentionShape& s);

}  // namespace strata::kernels

#endif  // STRATA_RUNTIME_KERNELS_ATTENTION_H_
