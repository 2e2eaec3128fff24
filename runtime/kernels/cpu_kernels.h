// Element-wise and row-wise CPU kernels of the transformer runtime (the matmuls are in
// matmul.h, attention in attention.h). Each kernel is compiled for AVX-512, AVX2+FMA and
// baseline x86-64 and the best one for the running CPU is chosen at load time (GCC
// target_clones); rows are spread over the compute thread pool (runtime/base/thread_pool.h).
//
// Conventions: outputs first, then inputs, then sizes; shapes in comments, row-major. N is the
// number of rows (B*T). `*_backward` kernels *accumulate* into parameter gradients
// (dweight, dbias) and, where noted, into dinp. Reductions over rows (parameter gradients) are
// split over columns, never over rows, so results do not depend on the thread count.
#ifndef STRATA_RUNTIME_KERNELS_CPU_KERNELS_H_
#define STRATA_RUNTIME_KERNELS_CPU_KERNELS_H_

#include <cstdint>

namespace strata::kernels {

// The instruction set the dispatched kernels run with on this CPU: "avx512", "avx2" or "baseline".
const char* CpuKernelIsa();

// out, inp: (N, C); weight, bias: (C); mean, rstd: (N) saved for backward (may be null).
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int C, float eps);
// dinp += ...; dweight, dbias += ... (both skipped when dweight is null: a frozen norm).
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean, const float* rstd,
                        int64_t N, int C);

// RMSNorm as in LLaMA: out = inp / sqrt(mean(inp^2) + eps) * weight. rstd: (N), may be null.
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N,
                     int C, float eps);
// dinp += ...; dweight += ... (skipped when null).
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int64_t N, int C);

// GELU, tanh approximation ("gelu_new"). out, inp: (n).
void gelu_forward(float* out, const float* inp, int64_t n);
// dinp = gelu'(inp) * dout (overwrites; dinp may alias dout).
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n);

// ReLU. out, inp: (n); dinp = (inp > 0) * dout (overwrites; dinp may alias dout).
void relu_forward(float* out, const float* inp, int64_t n);
void relu_backward(float* dinp, const float* inp, const float* dout, int64_t n);

// Per-head RMSNorm of the q and k parts of qkv rows (Qwen3's q_norm / k_norm): each of the
// n_head q heads and n_kv_head k heads (hd floats) of each of the N rows of `inp` is normalized
// and scaled by q_weight or k_weight (hd); v is copied. out, inp: (N, (n_head + 2 n_kv_head) hd),
// out may not alias inp. rstd: (N, n_head + n_kv_head), may be null.
void head_rmsnorm_forward(float* out, float* rstd, const float* inp, const float* q_weight,
                          const float* k_weight, int64_t N, int n_head, int n_kv_head, int hd,
                          float eps);
// dinp (overwritten, same shape as inp: v's gradient passes through), dq_weight, dk_weight +=
// (skipped when dq_weight is null).
void head_rmsnorm_backward(float* dinp, float* dq_weight, float* dk_weight, const float* dout,
                           const float* inp, const float* q_weight, const float* k_weight,
                           const float* rstd, int64_t N, int n_head, int n_kv_head, int hd);

// SwiGLU: gate_up (N, 2F) holds [gate | up] per row; out (N, F) = silu(gate) * up.
void swiglu_forward(float* out, const float* gate_up, int64_t N, int F);
// dgate_up (N, 2F) = d/d[gate|up] (overwrites).
void swiglu_backward(float* dgate_up, const float* gate_up, const float* dout, int64_t N, int F);

// Rotary position embedding (Hugging Face "rotate_half" convention) applied in place to the q
// and k parts of qkv (B, T, (n_head + 2 n_kv_head) * hd); position of row (b, t) is start + t.
// inv_freq holds hd / 2 inverse frequencies (runtime/model/rope_frequencies.h); the angle is
// position * inv_freq in float32; cos and sin are multiplied by `scale` (yarn's attention
// factor, 1 otherwise). inverse = true rotates by the negative angle (with the same scale: the
// backward of the forward rotation).
void rope_apply(float* qkv, int B, int T, int n_head, int n_kv_head, int hd, const float* inv_freq,
                bool inverse, float scale = 1.0f, int start = 0);

// out = a + b; all (n). out may alias a or b.
void residual_forward(float* out, const float* a, const float* b, int64_t n);

// out (B*T, C) = wte[tokens] (+ wpe[t] when wpe is not null).
void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B,
                       int T, int C);
// dwte[tokens] += dout; dwpe[t] += dout (when dwpe not null).
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B,
                        int T, int C);

// For each row of logits (n_rows, V): losses[r] = -log softmax(logits[r])[targets[r]], and when
// `dlogits_scale` != 0 the row is overwritten in place with (softmax - onehot) * dlogits_scale.
// Rows whose target is negative (ignore index) get loss 0 and (if requested) zero gradient.
// A target >= V is a caller bug and is treated as ignored.
void crossentropy_rows(float* logits, float* losses, const int32_t* targets, int64_t n_rows, int V,
                       float dlogits_scale);

// The cross-entropy of rows whose logits arrive in vocabulary chunks (online softmax): folds
// logits (n_rows, len), columns [col0, col0 + len) of the full rows, into the running maximum
// mx, running sum of exp(logit - mx) and target logit of each row (start with mx = -inf,
// sum = 0). The loss of a row is log(sum) + mx - target_logit. Rows with a negative target are
// skipped.
void crossentropy_chunk(const float* logits, int64_t n_rows, int len, int64_t col0,
                        const int32_t* targets, float* mx, float* sum, float* target_logit);

// Causal softmax of one attention score matrix in place: rows (T, prefix + T) with leading
// dimension ld, row i the query at position prefix + i and column j the key at position j (the
// first `prefix` keys a cached prefix's); entries j > prefix + i are set to 0, and with
// window > 0 also entries j <= prefix + i - window (each row attends to the last `window`
// positions including itself). `scale` multiplies scores first.
void causal_softmax_rows(float* att, int T, int64_t ld, float scale, int window = 0,
                         int prefix = 0);

// att_backward: given probabilities P and dP (both (T, prefix + T), ld), writes
// dS = P * (dP - rowsum(dP*P)) * scale into dP in place (entries outside the causal window are 0).
void causal_softmax_backward_rows(float* dp, const float* p, int T, int64_t ld, float scale,
                                  int window = 0, int prefix = 0);

// Sum over rows: out[c] += sum_n inp[n, c]. inp (N, C).
void colsum_accumulate(float* out, const float* inp, int64_t N, int C);

}  // namespace strata::kernels

#endif  // STRATA_RUNTIME_KERNELS_CPU_KERNELS_H_
