// See attention.h.
#include "runtime/kernels/attention.h"

#include <cmath>
#include <cstring>

#include "runtime/kernels/cpu_kernels.h"
#include "runtime/kernels/matmul.h"

namespace strata::kernels {

int64_t AttentionScratchFloats(const AttentionShape& s) {
  return static_cast<int64_t>(s.T) * (s.prefix + s.T);
}

void attention_forward(float* out, float* att, float* scratch, const float* qkv,
                       const AttentionShape& s) {
  const int64_t row = s.qkv_row();
  const int64_t C = static_cast<int64_t>(s.NH) * s.HD;  // Width of out.
  const int group = s.NH / s.NKV;
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.HD));
  const int P = s.prefix, S = s.prefix + s.T;  // Keys per query row: the prefix's, the tokens'.
  for (int b = 0; b < s.B; ++b) {
    const float* base = qkv + static_cast<int64_t>(b) * s.T * row;
    for (int h = 0; h < s.NH; ++h) {
      const int kvh = h / group;
      const float* q = base + static_cast<int64_t>(h) * s.HD;
      const float* k = base + static_cast<int64_t>(s.NH + kvh) * s.HD;
      const float* v = base + static_cast<int64_t>(s.NH + s.NKV + kvh) * s.HD;
      float* p = att != nullptr ? att + (static_cast<int64_t>(b) * s.NH + h) * s.T * S : scratch;
      float* out_h = out + static_cast<int64_t>(b) * s.T * C + static_cast<int64_t>(h) * s.HD;
      // p (T, S) = q [prefix k; k]^T; only the causal part is used.
      if (P > 0) {
        sgemm(false, true, s.T, P, s.HD, 1.0f, q, row, s.prefix_k + kvh * s.HD, s.prefix_ld, 0.0f,
              p, S);
      }
      sgemm(false, true, s.T, s.T, s.HD, 1.0f, q, row, k, row, 0.0f, p + P, S);
      causal_softmax_rows(p, s.T, S, scale, s.window, P);
      // out_h (T, HD) = p [prefix v; v].
      sgemm(false, false, s.T, s.HD, s.T, 1.0f, p + P, S, v, row, 0.0f, out_h, C);
      if (P > 0) {
        sgemm(false, false, s.T, s.HD, P, 1.0f, p, S, s.prefix_v + kvh * s.HD, s.prefix_ld, 1.0f,
              out_h, C);
      }
    }
  }
}

void attention_backward(float* dqkv, float* datt_scratch, const float* dout, const float* qkv,
                        const float* att, const AttentionShape& s) {
  const int64_t row = s.qkv_row();
  const int64_t C = static_cast<int64_t>(s.NH) * s.HD;
  const int group = s.NH / s.NKV;
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.HD));
  const int P = s.prefix, S = s.prefix + s.T;
  std::memset(dqkv, 0, sizeof(float) * static_cast<int64_t>(s.B) * s.T * row);
  float* dp = datt_scratch;
  for (int b = 0; b < s.B; ++b) {
    const int64_t offset = static_cast<int64_t>(b) * s.T * row;
    const float* base = qkv + offset;
    float* dbase = dqkv + offset;
    for (int h = 0; h < s.NH; ++h) {
      const int kvh = h / group;
      const int64_t qo = static_cast<int64_t>(h) * s.HD;
      const int64_t ko = static_cast<int64_t>(s.NH + kvh) * s.HD;
      const int64_t vo = static_cast<int64_t>(s.NH + s.NKV + kvh) * s.HD;
      const float* p = att + (static_cast<int64_t>(b) * s.NH + h) * s.T * S;
      const float* dout_h = dout + static_cast<int64_t>(b) * s.T * C + qo;
      // dp (T, S) = dout_h [prefix v; v]^T; dv += p^T dout_h (the prefix's part to its gradient).
      if (P > 0) {
        sgemm(false, true, s.T, P, s.HD, 1.0f, dout_h, C, s.prefix_v + kvh * s.HD, s.prefix_ld,
              0.0f, dp, S);
        if (s.dprefix_v != nullptr) {
          sgemm(true, false, P, s.HD, s.T, 1.0f, p, S, dout_h, C, 1.0f, s.dprefix_v + kvh * s.HD,
                s.prefix_ld);
        }
      }
      sgemm(false, true, s.T, s.T, s.HD, 1.0f, dout_h, C, base + vo, row, 0.0f, dp + P, S);
      sgemm(true, false, s.T, s.HD, s.T, 1.0f, p + P, S, dout_h, C, 1.0f, dbase + vo, row);
      // ds = p * (dp - rowsum(dp * p)) * scale, in place.
      causal_softmax_backward_rows(dp, p, s.T, S, scale, s.window, P);
      // dq = ds [prefix k; k]; dk += ds^T q (the prefix's part to its gradient).
      sgemm(false, false, s.T, s.HD, s.T, 1.0f, dp + P, S, base + ko, row, 0.0f, dbase + qo, row);
      sgemm(true, false, s.T, s.HD, s.T, 1.0f, dp + P, S, base + qo, row, 1.0f, dbase + ko, row);
      if (P > 0) {
        sgemm(false, false, s.T, s.HD, P, 1.0f, dp, S, s.prefix_k + kvh * s.HD, s.prefix_ld, 1.0f,
              dbase + qo, row);
        if (s.dprefix_k != nullptr) {
          sgemm(true, false, P, s.HD, s.T, 1.0f, dp, S, base + qo, row, 1.0f,
                s.dprefix_k + kvh * s.HD, s.prefix_ld);
        }
      }
    }
  }
}

}  // namespace strata::kernels
