// See cpu_kernels.h. The row kernels (row_kernels.inc) are compiled three times in this file, for
// AVX-512, AVX2+FMA and baseline x86-64, each inside a `#pragma GCC target` region so their
// inline helpers are compiled for the same instruction set and vectorize; Rows() picks one set
// for the running CPU once. Loops are written to auto-vectorize (`#pragma omp simd`) and math
// functions are branch-free polynomials (ExpApprox), accurate to ~2e-7 relative.
#include "runtime/kernels/cpu_kernels.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/base/thread_pool.h"
#include "runtime/kernels/cpu_dispatch.h"

namespace strata::kernels {
namespace {

namespace baseline {
#include "runtime/kernels/row_kernels.inc"
}  // namespace baseline

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
namespace avx512 {
#include "runtime/kernels/row_kernels.inc"
}  // namespace avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#include "runtime/kernels/row_kernels.inc"
}  // namespace avx2
#pragma GCC pop_options
#else
// Elsewhere (aarch64 edge clients) the baseline set, compiled for that machine, is the one.
namespace avx512 = baseline;
namespace avx2 = baseline;
#endif

// The row kernels of one instruction set.
struct RowKernels {
  const char* isa;
  decltype(&baseline::LayerNormRow) LayerNormRow;
  decltype(&baseline::LayerNormBackwardRow) LayerNormBackwardRow;
  decltype(&baseline::RmsNormRow) RmsNormRow;
  decltype(&baseline::RmsNormBackwardRow) RmsNormBackwardRow;
  decltype(&baseline::GeluSpan) GeluSpan;
  decltype(&baseline::GeluBackwardSpan) GeluBackwardSpan;
  decltype(&baseline::SwigluRow) SwigluRow;
  decltype(&baseline::SwigluBackwardRow) SwigluBackwardRow;
  decltype(&baseline::AddSpan) AddSpan;
  decltype(&baseline::AccumulateSpan) AccumulateSpan;
  decltype(&baseline::CrossEntropyRow) CrossEntropyRow;
  decltype(&baseline::CrossEntropyChunkRow) CrossEntropyChunkRow;
  decltype(&baseline::SoftmaxPrefix) SoftmaxPrefix;
  decltype(&baseline::SoftmaxBackwardPrefix) SoftmaxBackwardPrefix;
};

#define STRATA_ROW_KERNELS(ns)                                                                 \
  RowKernels {                                                                                 \
#ns, ns::LayerNormRow, ns::LayerNormBackwardRow, ns::RmsNormRow, ns::RmsNormBackwardRow,   \
        ns::GeluSpan, ns::GeluBackwardSpan, ns::SwigluRow, ns::SwigluBackwardRow, ns::AddSpan, \
        ns::AccumulateSpan, ns::CrossEntropyRow, ns::CrossEntropyChunkRow, ns::SoftmaxPrefix,  \
        ns::SoftmaxBackwardPrefix                                                              \
  }

// Chosen once, for the CPU this process runs on.
const RowKernels& Rows() {
  static const RowKernels rows = [] {
    const std::string isa = DispatchedIsa();
    if (isa == "avx512") return STRATA_ROW_KERNELS(avx512);
    if (isa == "avx2") return STRATA_ROW_KERNELS(avx2);
    return STRATA_ROW_KERNELS(baseline);
  }();
  return rows;
}

// Column-blocked accumulation out[c] += sum_n rows: each thread owns a column range.
constexpr int kColumnBlock = 64;

}  // namespace

const char* CpuKernelIsa() { return Rows().isa; }

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int C, float eps) {
  ParallelFor(N, [&](int64_t begin_, int64_t end_) {
    for (int64_t n = static_cast<int64_t>(begin_); n < end_; ++n) {
      Rows().LayerNormRow(out + n * C, mean ? mean + n : nullptr, rstd ? rstd + n : nullptr,
                          inp + n * C, weight, bias, C, eps);
    }
  });
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean, const float* rstd,
                        int64_t N, int C) {
  ParallelFor(N, [&](int64_t begin_, int64_t end_) {
    for (int64_t n = static_cast<int64_t>(begin_); n < end_; ++n) {
      Rows().LayerNormBackwardRow(dinp + n * C, dout + n * C, inp + n * C, weight, mean[n], rstd[n],
                                  C);
    }
  });
  if (dweight == nullptr) return;  // Frozen norm.
  const int blocks = (C + kColumnBlock - 1) / kColumnBlock;
  ParallelFor(blocks, [&](int64_t begin_, int64_t end_) {
    for (int blk = static_cast<int>(begin_); blk < end_; ++blk) {
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
  });
}

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N,
                     int C, float eps) {
  ParallelFor(N, [&](int64_t begin_, int64_t end_) {
    for (int64_t n = static_cast<int64_t>(begin_); n < end_; ++n) {
      Rows().RmsNormRow(out + n * C, rstd ? rstd + n : nullptr, inp + n * C, weight, C, eps);
    }
  });
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int64_t N, int C) {
  ParallelFor(N, [&](int64_t begin_, int64_t end_) {
    for (int64_t n = static_cast<int64_t>(begin_); n < end_; ++n) {
      Rows().RmsNormBackwardRow(dinp + n * C, dout + n * C, inp + n * C, weight, rstd[n], C);
    }
  });
  if (dweight == nullptr) return;  // Frozen norm.
  const int blocks = (C + kColumnBlock - 1) / kColumnBlock;
  ParallelFor(blocks, [&](int64_t begin_, int64_t end_) {
    for (int blk = static_cast<int>(begin_); blk < end_; ++blk) {
      const int c0 = blk * kColumnBlock, c1 = std::min(C, c0 + kColumnBlock);
      for (int64_t n = 0; n < N; ++n) {
        const float* x = inp + n * C;
        const float* d = dout + n * C;
        const float s = rstd[n];
        for (int c = c0; c < c1; ++c) dweight[c] += x[c] * s * d[c];
      }
    }
  });
}

namespace {
constexpr int64_t kSpanChunk = 16384;
}

void gelu_forward(float* out, const float* inp, int64_t n) {
  const int64_t chunks = (n + kSpanChunk - 1) / kSpanChunk;
  ParallelFor(chunks, [&](int64_t begin_, int64_t end_) {
    for (int64_t c = static_cast<int64_t>(begin_); c < end_; ++c) {
      const int64_t begin = c * kSpanChunk;
      Rows().GeluSpan(out + begin, inp + begin, std::min(kSpanChunk, n - begin));
    }
  });
}

void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n) {
  const int64_t chunks = (n + kSpanChunk - 1) / kSpanChunk;
  ParallelFor(chunks, [&](int64_t begin_, int64_t end_) {
    for (int64_t c = static_cast<int64_t>(begin_); c < end_; ++c) {
      const int64_t begin = c * kSpanChunk;
      Rows().GeluBackwardSpan(dinp + begin, inp + begin, dout + begin,
                              std::min(kSpanChunk, n - begin));
    }
  });
}

void swiglu_forward(float* out, const float* gate_up, int64_t N, int F) {
  ParallelFor(N, [&](int64_t begin_, int64_t end_) {
    for (int64_t n = static_cast<int64_t>(begin_); n < end_; ++n) {
      Rows().SwigluRow(out + n * F, gate_up + n * 2 * F, gate_up + n * 2 * F + F, F);
    }
  });
}

void swiglu_backward(float* dgate_up, const float* gate_up, const float* dout, int64_t N, int F) {
  ParallelFor(N, [&](int64_t begin_, int64_t end_) {
    for (int64_t n = static_cast<int64_t>(begin_); n < end_; ++n) {
      const float* g = gate_up + n * 2 * F;
      float* dg = dgate_up + n * 2 * F;
      Rows().SwigluBackwardRow(dg, dg + F, g, g + F, dout + n * F, F);
    }
  });
}

void rope_apply(float* qkv, int B, int T, int n_head, int n_kv_head, int hd, const float* inv_freq,
                bool inverse, float scale, int start) {
  const int half = hd / 2;
  const int64_t row = static_cast<int64_t>(n_head + 2 * n_kv_head) * hd;
  const int rotated_heads = n_head + n_kv_head;  // q heads then k heads.
  ParallelFor(static_cast<int64_t>(B) * T, [&](int64_t begin_, int64_t end_) {
    for (int64_t bt = static_cast<int64_t>(begin_); bt < end_; ++bt) {
      const int t = start + static_cast<int>(bt % T);
      float* base = qkv + bt * row;
      for (int i = 0; i < half; ++i) {
        const float angle = static_cast<float>(t) * inv_freq[i];
        const float c = std::cos(angle) * scale;
        const float s = (inverse ? -std::sin(angle) : std::sin(angle)) * scale;
        for (int h = 0; h < rotated_heads; ++h) {
          float* x = base + static_cast<int64_t>(h) * hd;
          const float x1 = x[i], x2 = x[i + half];
          x[i] = x1 * c - x2 * s;
          x[i + half] = x2 * c + x1 * s;
        }
      }
    }
  });
}

void relu_forward(float* out, const float* inp, int64_t n) {
  const int64_t chunks = (n + kSpanChunk - 1) / kSpanChunk;
  ParallelFor(chunks, [&](int64_t begin_, int64_t end_) {
    for (int64_t c = begin_; c < end_; ++c) {
      const int64_t begin = c * kSpanChunk, end = std::min(n, begin + kSpanChunk);
      for (int64_t i = begin; i < end; ++i) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
    }
  });
}

void relu_backward(float* dinp, const float* inp, const float* dout, int64_t n) {
  const int64_t chunks = (n + kSpanChunk - 1) / kSpanChunk;
  ParallelFor(chunks, [&](int64_t begin_, int64_t end_) {
    for (int64_t c = begin_; c < end_; ++c) {
      const int64_t begin = c * kSpanChunk, end = std::min(n, begin + kSpanChunk);
      for (int64_t i = begin; i < end; ++i) dinp[i] = inp[i] > 0.0f ? dout[i] : 0.0f;
    }
  });
}

void head_rmsnorm_forward(float* out, float* rstd, const float* inp, const float* q_weight,
                          const float* k_weight, int64_t N, int n_head, int n_kv_head, int hd,
                          float eps) {
  const int normed = n_head + n_kv_head;
  const int64_t row = static_cast<int64_t>(normed + n_kv_head) * hd;
  ParallelFor(N, [&](int64_t begin_, int64_t end_) {
    for (int64_t n = begin_; n < end_; ++n) {
      for (int h = 0; h < normed; ++h) {
        const int64_t at = n * row + static_cast<int64_t>(h) * hd;
        Rows().RmsNormRow(out + at, rstd != nullptr ? rstd + n * normed + h : nullptr, inp + at,
                          h < n_head ? q_weight : k_weight, hd, eps);
      }
      const int64_t v = n * row + static_cast<int64_t>(normed) * hd;
      std::memcpy(out + v, inp + v, sizeof(float) * n_kv_head * hd);
    }
  });
}

void head_rmsnorm_backward(float* dinp, float* dq_weight, float* dk_weight, const float* dout,
                           const float* inp, const float* q_weight, const float* k_weight,
                           const float* rstd, int64_t N, int n_head, int n_kv_head, int hd) {
  const int normed = n_head + n_kv_head;
  const int64_t row = static_cast<int64_t>(normed + n_kv_head) * hd;
  ParallelFor(N, [&](int64_t begin_, int64_t end_) {
    for (int64_t n = begin_; n < end_; ++n) {
      std::memset(dinp + n * row, 0, sizeof(float) * normed * hd);
      for (int h = 0; h < normed; ++h) {
        const int64_t at = n * row + static_cast<int64_t>(h) * hd;
        Rows().RmsNormBackwardRow(dinp + at, dout + at, inp + at, h < n_head ? q_weight : k_weight,
                                  rstd[n * normed + h], hd);
      }
      const int64_t v = n * row + static_cast<int64_t>(normed) * hd;
      std::memcpy(dinp + v, dout + v, sizeof(float) * n_kv_head * hd);
    }
  });
  // Weight gradients: one pass per weight over all rows, in row order (thread-count independent).
  if (dq_weight == nullptr) return;  // Frozen norms.
  for (int which = 0; which < 2; ++which) {
    float* dw = which == 0 ? dq_weight : dk_weight;
    const int h0 = which == 0 ? 0 : n_head, h1 = which == 0 ? n_head : normed;
    for (int64_t n = 0; n < N; ++n) {
      for (int h = h0; h < h1; ++h) {
        const int64_t at = n * row + static_cast<int64_t>(h) * hd;
        const float s = rstd[n * normed + h];
        for (int i = 0; i < hd; ++i) dw[i] += inp[at + i] * s * dout[at + i];
      }
    }
  }
}

void residual_forward(float* out, const float* a, const float* b, int64_t n) {
  const int64_t chunks = (n + kSpanChunk - 1) / kSpanChunk;
  ParallelFor(chunks, [&](int64_t begin_, int64_t end_) {
    for (int64_t c = static_cast<int64_t>(begin_); c < end_; ++c) {
      const int64_t begin = c * kSpanChunk;
      Rows().AddSpan(out + begin, a + begin, b + begin, std::min(kSpanChunk, n - begin));
    }
  });
}

void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B,
                       int T, int C) {
  ParallelFor(static_cast<int64_t>(B) * T, [&](int64_t begin_, int64_t end_) {
    for (int64_t bt = static_cast<int64_t>(begin_); bt < end_; ++bt) {
      float* o = out + bt * C;
      const float* e = wte + static_cast<int64_t>(tokens[bt]) * C;
      if (wpe != nullptr) {
        Rows().AddSpan(o, e, wpe + (bt % T) * C, C);
      } else {
        std::memcpy(o, e, sizeof(float) * C);
      }
    }
  });
}

void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B,
                        int T, int C) {
  const int64_t N = static_cast<int64_t>(B) * T;
  const int blocks = (C + kColumnBlock - 1) / kColumnBlock;
  ParallelFor(blocks, [&](int64_t begin_, int64_t end_) {
    for (int blk = static_cast<int>(begin_); blk < end_; ++blk) {
      const int c0 = blk * kColumnBlock, len = std::min(C, c0 + kColumnBlock) - c0;
      for (int64_t bt = 0; bt < N; ++bt) {
        const float* d = dout + bt * C + c0;
        Rows().AccumulateSpan(dwte + static_cast<int64_t>(tokens[bt]) * C + c0, d, len);
        if (dwpe != nullptr) Rows().AccumulateSpan(dwpe + (bt % T) * C + c0, d, len);
      }
    }
  });
}

void crossentropy_rows(float* logits, float* losses, const int32_t* targets, int64_t n_rows, int V,
                       float dlogits_scale) {
  ParallelFor(n_rows, [&](int64_t begin_, int64_t end_) {
    for (int64_t r = static_cast<int64_t>(begin_); r < end_; ++r) {
      float* row = logits + r * V;
      const int32_t target = targets[r];
      if (target < 0 || target >= V) {
        losses[r] = 0.0f;
        if (dlogits_scale != 0.0f) std::memset(row, 0, sizeof(float) * V);
        continue;
      }
      losses[r] = Rows().CrossEntropyRow(row, target, V, dlogits_scale);
    }
  });
}

void crossentropy_chunk(const float* logits, int64_t n_rows, int len, int64_t col0,
                        const int32_t* targets, float* mx, float* sum, float* target_logit) {
  ParallelFor(n_rows, [&](int64_t begin_, int64_t end_) {
    for (int64_t r = static_cast<int64_t>(begin_); r < end_; ++r) {
      if (targets[r] < 0) continue;
      const float* row = logits + r * len;
      Rows().CrossEntropyChunkRow(row, len, mx + r, sum + r);
      const int64_t t = targets[r] - col0;
      if (t >= 0 && t < len) target_logit[r] = row[t];
    }
  });
}

namespace {
// The first column row i attends to.
int WindowStart(int i, int window) { return window > 0 && i >= window ? i - window + 1 : 0; }
}  // namespace

void causal_softmax_rows(float* att, int T, int64_t ld, float scale, int window, int prefix) {
  const int S = prefix + T;  // Keys: the prefix's, then the tokens'.
  for (int i = 0; i < T; ++i) {
    float* row = att + i * ld;
    const int last = prefix + i, lo = WindowStart(last, window);
    std::memset(row, 0, sizeof(float) * lo);
    Rows().SoftmaxPrefix(row + lo, last + 1 - lo, scale);
    std::memset(row + last + 1, 0, sizeof(float) * (S - last - 1));
  }
}

void causal_softmax_backward_rows(float* dp, const float* p, int T, int64_t ld, float scale,
                                  int window, int prefix) {
  const int S = prefix + T;
  for (int i = 0; i < T; ++i) {
    const int last = prefix + i, lo = WindowStart(last, window);
    std::memset(dp + i * ld, 0, sizeof(float) * lo);
    Rows().SoftmaxBackwardPrefix(dp + i * ld + lo, p + i * ld + lo, last + 1 - lo, scale);
    std::memset(dp + i * ld + last + 1, 0, sizeof(float) * (S - last - 1));
  }
}

void colsum_accumulate(float* out, const float* inp, int64_t N, int C) {
  const int blocks = (C + kColumnBlock - 1) / kColumnBlock;
  ParallelFor(blocks, [&](int64_t begin_, int64_t end_) {
    for (int blk = static_cast<int>(begin_); blk < end_; ++blk) {
      const int c0 = blk * kColumnBlock, len = std::min(C, c0 + kColumnBlock) - c0;
      for (int64_t n = 0; n < N; ++n) Rows().AccumulateSpan(out + c0, inp + n * C + c0, len);
    }
  });
}

}  // namespace strata::kernels
