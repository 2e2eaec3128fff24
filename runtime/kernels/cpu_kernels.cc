// See cpu_kernels.h. Row functions carry STRATA_CPU_CLONES so GCC builds AVX-512, AVX2+FMA and
// baseline versions and picks one at load time; loops are written to auto-vectorize
// (`#pragma omp simd`) and math functions are replaced by branch-free polynomial versions
// (ExpApprox) that vectorize, accurate to ~2e-7 relative.
#include "runtime/kernels/cpu_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/kernels/cpu_dispatch.h"

namespace strata::kernels {
namespace {

// exp(x) for x in [-87, 88]: Cody-Waite range reduction x = n ln2 + r, degree-6 Taylor
// polynomial for exp(r), scale by 2^n through the exponent bits.
inline float ExpApprox(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = x - n * 0.693145751953125f - n * 1.42860682030941723212e-6f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

inline float TanhApprox(float u) { return 1.0f - 2.0f / (ExpApprox(2.0f * u) + 1.0f); }

constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2 / pi)

STRATA_CPU_CLONES void LayerNormRow(float* out, float* mean_out, float* rstd_out, const float* x,
                                    const float* w, const float* b, int C, float eps) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int i = 0; i < C; ++i) sum += x[i];
  const float m = sum / C;
  float var = 0.0f;
#pragma omp simd reduction(+ : var)
  for (int i = 0; i < C; ++i) var += (x[i] - m) * (x[i] - m);
  const float s = 1.0f / std::sqrt(var / C + eps);
#pragma omp simd
  for (int i = 0; i < C; ++i) out[i] = (x[i] - m) * s * w[i] + b[i];
  if (mean_out != nullptr) *mean_out = m;
  if (rstd_out != nullptr) *rstd_out = s;
}

STRATA_CPU_CLONES void LayerNormBackwardRow(float* dx, const float* dout, const float* x,
                                            const float* w, float m, float s, int C) {
  float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
#pragma omp simd reduction(+ : dnorm_mean, dnorm_norm_mean)
  for (int i = 0; i < C; ++i) {
    const float xhat = (x[i] - m) * s;
    const float dnorm = w[i] * dout[i];
    dnorm_mean += dnorm;
    dnorm_norm_mean += dnorm * xhat;
  }
  dnorm_mean /= C;
  dnorm_norm_mean /= C;
#pragma omp simd
  for (int i = 0; i < C; ++i) {
    const float xhat = (x[i] - m) * s;
    dx[i] += (w[i] * dout[i] - dnorm_mean - xhat * dnorm_norm_mean) * s;
  }
}

STRATA_CPU_CLONES void RmsNormRow(float* out, float* rstd_out, const float* x, const float* w,
                                  int C, float eps) {
  float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
  for (int i = 0; i < C; ++i) ss += x[i] * x[i];
  const float s = 1.0f / std::sqrt(ss / C + eps);
#pragma omp simd
  for (int i = 0; i < C; ++i) out[i] = x[i] * s * w[i];
  if (rstd_out != nullptr) *rstd_out = s;
}

STRATA_CPU_CLONES void RmsNormBackwardRow(float* dx, const float* dout, const float* x,
                                          const float* w, float s, int C) {
  // y_i = w_i x_i s, s = (mean(x^2)+eps)^-1/2; dx_i = s (w_i g_i) - x_i s^3 mean(w g x).
  float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
  for (int i = 0; i < C; ++i) dot += w[i] * dout[i] * x[i];
  const float k = dot * s * s * s / C;
#pragma omp simd
  for (int i = 0; i < C; ++i) dx[i] += s * w[i] * dout[i] - x[i] * k;
}

STRATA_CPU_CLONES void GeluSpan(float* out, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float u = kGeluScale * (v + 0.044715f * v * v * v);
    out[i] = 0.5f * v * (1.0f + TanhApprox(u));
  }
}

STRATA_CPU_CLONES void GeluBackwardSpan(float* dx, const float* x, const float* dout, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float u = kGeluScale * (v + 0.044715f * v * v * v);
    const float t = TanhApprox(u);
    const float du = kGeluScale * (1.0f + 3.0f * 0.044715f * v * v);
    const float grad = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du;
    dx[i] = grad * dout[i];
  }
}

STRATA_CPU_CLONES void SwigluRow(float* out, const float* gate, const float* up, int F) {
#pragma omp simd
  for (int i = 0; i < F; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + ExpApprox(-g)) * up[i];
  }
}

STRATA_CPU_CLONES void SwigluBackwardRow(float* dgate, float* dup, const float* gate,
                                         const float* up, const float* dout, int F) {
#pragma omp simd
  for (int i = 0; i < F; ++i) {
    const float g = gate[i];
    const float sig = 1.0f / (1.0f + ExpApprox(-g));
    const float silu = g * sig;
    const float d = dout[i];
    dup[i] = silu * d;
    dgate[i] = up[i] * d * (sig + silu * (1.0f - sig));
  }
}

STRATA_CPU_CLONES void AddSpan(float* out, const float* a, const float* b, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

STRATA_CPU_CLONES void AccumulateSpan(float* out, const float* a, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] += a[i];
}

// Returns the loss of the row; with scale != 0, overwrites the row with the scaled gradient.
STRATA_CPU_CLONES float CrossEntropyRow(float* row, int32_t target, int V, float scale) {
  const float logit_target = row[target];
  float mx = row[0];
#pragma omp simd reduction(max : mx)
  for (int i = 0; i < V; ++i) mx = std::max(mx, row[i]);
  float sum = 0.0f;
  if (scale != 0.0f) {
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < V; ++i) {
      const float e = ExpApprox(row[i] - mx);
      row[i] = e;
      sum += e;
    }
  } else {
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < V; ++i) sum += ExpApprox(row[i] - mx);
  }
  const float loss = std::log(sum) + mx - logit_target;
  if (scale != 0.0f) {
    const float k = scale / sum;
#pragma omp simd
    for (int i = 0; i < V; ++i) row[i] *= k;
    row[target] -= scale;
  }
  return loss;
}

STRATA_CPU_CLONES void SoftmaxPrefix(float* row, int len, float scale) {
  float mx = -3.0e38f;
#pragma omp simd reduction(max : mx)
  for (int j = 0; j < len; ++j) mx = std::max(mx, row[j] * scale);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j < len; ++j) {
    const float e = ExpApprox(row[j] * scale - mx);
    row[j] = e;
    sum += e;
  }
  const float inv = 1.0f / sum;
#pragma omp simd
  for (int j = 0; j < len; ++j) row[j] *= inv;
}

STRATA_CPU_CLONES void SoftmaxBackwardPrefix(float* dp, const float* p, int len, float scale) {
  float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
  for (int j = 0; j < len; ++j) dot += dp[j] * p[j];
#pragma omp simd
  for (int j = 0; j < len; ++j) dp[j] = p[j] * (dp[j] - dot) * scale;
}

// Column-blocked accumulation out[c] += sum_n rows: each thread owns a column range.
constexpr int kColumnBlock = 64;

}  // namespace

const char* CpuKernelIsa() { return DispatchedIsa(); }

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int64_t N, int C, float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    LayerNormRow(out + n * C, mean ? mean + n : nullptr, rstd ? rstd + n : nullptr, inp + n * C,
                 weight, bias, C, eps);
  }
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean,
                        const float* rstd, int64_t N, int C) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    LayerNormBackwardRow(dinp + n * C, dout + n * C, inp + n * C, weight, mean[n], rstd[n], C);
  }
  const int blocks = (C + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static)
  for (int blk = 0; blk < blocks; ++blk) {
    const int c0 = blk * kColumnBlock, c1 = std::min(C, c0 + kColumnBlock);
    for (int64_t n = 0; n < N; ++n) {
      const float* x = inp + n * C;
      const float* d = dout + n * C;
      const float m = mean[n], s = rstd[n];
      for (int c = c0; c < c1; ++c) {
        dweight[c] += (x[c] - m) * s * d[c];
        dbias[c] += d[c];
      }
    }
  }
}

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N,
                     int C, float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    RmsNormRow(out + n * C, rstd ? rstd + n : nullptr, inp + n * C, weight, C, eps);
  }
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int64_t N, int C) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    RmsNormBackwardRow(dinp + n * C, dout + n * C, inp + n * C, weight, rstd[n], C);
  }
  const int blocks = (C + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static)
  for (int blk = 0; blk < blocks; ++blk) {
    const int c0 = blk * kColumnBlock, c1 = std::min(C, c0 + kColumnBlock);
    for (int64_t n = 0; n < N; ++n) {
      const float* x = inp + n * C;
      const float* d = dout + n * C;
      const float s = rstd[n];
      for (int c = c0; c < c1; ++c) dweight[c] += x[c] * s * d[c];
    }
  }
}

namespace {
constexpr int64_t kSpanChunk = 16384;
}

void gelu_forward(float* out, const float* inp, int64_t n) {
  const int64_t chunks = (n + kSpanChunk - 1) / kSpanChunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * kSpanChunk;
    GeluSpan(out + begin, inp + begin, std::min(kSpanChunk, n - begin));
  }
}

void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n) {
  const int64_t chunks = (n + kSpanChunk - 1) / kSpanChunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * kSpanChunk;
    GeluBackwardSpan(dinp + begin, inp + begin, dout + begin, std::min(kSpanChunk, n - begin));
  }
}

void swiglu_forward(float* out, const float* gate_up, int64_t N, int F) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    SwigluRow(out + n * F, gate_up + n * 2 * F, gate_up + n * 2 * F + F, F);
  }
}

void swiglu_backward(float* dgate_up, const float* gate_up, const float* dout, int64_t N, int F) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* g = gate_up + n * 2 * F;
    float* dg = dgate_up + n * 2 * F;
    SwigluBackwardRow(dg, dg + F, g, g + F, dout + n * F, F);
  }
}

void rope_apply(float* qkv, int B, int T, int n_head, int n_kv_head, int hd, float theta,
                bool inverse) {
  const int half = hd / 2;
  const int64_t row = static_cast<int64_t>(n_head + 2 * n_kv_head) * hd;
  const int rotated_heads = n_head + n_kv_head;  // q heads then k heads.
  // inv_freq[i] = theta^(-2i/hd), computed in double as Hugging Face does in float32 from
  // torch.arange; the angle is position * inv_freq in float32.
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; ++i) {
    inv_freq[i] = static_cast<float>(1.0 / std::pow(static_cast<double>(theta),
                                                    static_cast<double>(2 * i) / hd));
  }
#pragma omp parallel for schedule(static)
  for (int64_t bt = 0; bt < static_cast<int64_t>(B) * T; ++bt) {
    const int t = static_cast<int>(bt % T);
    float* base = qkv + bt * row;
    for (int i = 0; i < half; ++i) {
      const float angle = static_cast<float>(t) * inv_freq[i];
      const float c = std::cos(angle);
      const float s = inverse ? -std::sin(angle) : std::sin(angle);
      for (int h = 0; h < rotated_heads; ++h) {
        float* x = base + static_cast<int64_t>(h) * hd;
        const float x1 = x[i], x2 = x[i + half];
        x[i] = x1 * c - x2 * s;
        x[i + half] = x2 * c + x1 * s;
      }
    }
  }
}

void residual_forward(float* out, const float* a, const float* b, int64_t n) {
  const int64_t chunks = (n + kSpanChunk - 1) / kSpanChunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * kSpanChunk;
    AddSpan(out + begin, a + begin, b + begin, std::min(kSpanChunk, n - begin));
  }
}

void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe,
                       int B, int T, int C) {
#pragma omp parallel for schedule(static)
  for (int64_t bt = 0; bt < static_cast<int64_t>(B) * T; ++bt) {
    float* o = out + bt * C;
    const float* e = wte + static_cast<int64_t>(tokens[bt]) * C;
    if (wpe != nullptr) {
      AddSpan(o, e, wpe + (bt % T) * C, C);
    } else {
      std::memcpy(o, e, sizeof(float) * C);
    }
  }
}

void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B,
                        int T, int C) {
  const int64_t N = static_cast<int64_t>(B) * T;
  const int blocks = (C + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static)
  for (int blk = 0; blk < blocks; ++blk) {
    const int c0 = blk * kColumnBlock, len = std::min(C, c0 + kColumnBlock) - c0;
    for (int64_t bt = 0; bt < N; ++bt) {
      const float* d = dout + bt * C + c0;
      AccumulateSpan(dwte + static_cast<int64_t>(tokens[bt]) * C + c0, d, len);
      if (dwpe != nullptr) AccumulateSpan(dwpe + (bt % T) * C + c0, d, len);
    }
  }
}

void crossentropy_rows(float* logits, float* losses, const int32_t* targets, int64_t n_rows,
                       int V, float dlogits_scale) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n_rows; ++r) {
    float* row = logits + r * V;
    const int32_t target = targets[r];
    if (target < 0 || target >= V) {
      losses[r] = 0.0f;
      if (dlogits_scale != 0.0f) std::memset(row, 0, sizeof(float) * V);
      continue;
    }
    losses[r] = CrossEntropyRow(row, target, V, dlogits_scale);
  }
}

void causal_softmax_rows(float* att, int T, int64_t ld, float scale) {
  for (int i = 0; i < T; ++i) {
    float* row = att + i * ld;
    SoftmaxPrefix(row, i + 1, scale);
    std::memset(row + i + 1, 0, sizeof(float) * (T - i - 1));
  }
}

void causal_softmax_backward_rows(float* dp, const float* p, int T, int64_t ld, float scale) {
  for (int i = 0; i < T; ++i) {
    SoftmaxBackwardPrefix(dp + i * ld, p + i * ld, i + 1, scale);
    std::memset(dp + i * ld + i + 1, 0, sizeof(float) * (T - i - 1));
  }
}

void colsum_accumulate(float* out, const float* inp, int64_t N, int C) {
  const int blocks = (C + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static)
  for (int blk = 0; blk < blocks; ++blk) {
    const int c0 = blk * kColumnBlock, len = std::min(C, c0 + kColumnBlock) - c0;
    for (int64_t n = 0; n < N; ++n) AccumulateSpan(out + c0, inp + n * C + c0, len);
  }
}

}  // namespace strata::kernels
