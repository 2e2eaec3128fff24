// See attention.h.
#include "runtime/kernels/attention.h"

#include <cmath>
#include <cstring>

#include "runtime/kernels/cpu_kernels.h"
#include "runtime/kernels/matmul.h"

namespace strata::kernels {

int64_t AttentionScratchFloats(const AttentionShape& s) { return static_cast<int64_t>(s.T) * s.T; }

void attention_forward(float* out, float* att, float* scratch, const float* qkv,
                       const AttentionShape& s) {
  const int64_t row = s.qkv_row();
  const int64_t C = static_cast<int64_t>(s.NH) * s.HD;  // Width of out.
  const int group = s.NH / s.NKV;
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.HD));
  for (int b = 0; b < s.B; ++b) {
    const float* base = qkv + static_cast<int64_t>(b) * s.T * row;
    for (int h = 0; h < s.NH; ++h) {
      const int kvh = h / group;
      const float* q = base + static_cast<int64_t>(h) * s.HD;
      const float* k = base + static_cast<int64_t>(s.NH + kvh) * s.HD;
      const float* v = base + static_cast<int64_t>(s.NH + s.NKV + kvh) * s.HD;
      float* p = att != nullptr ? att + (static_cast<int64_t>(b) * s.NH + h) * s.T * s.T : scratch;
      // p (T, T) = q k^T; only the lower triangle is used.
      sgemm(false, true, s.T, s.T, s.HD, 1.0f, q, row, k, row, 0.0f, p, s.T);
      causal_softmax_rows(p, s.T, s.T, scale, s.window);
      // out_h (T, HD) = p v.
      sgemm(false, false, s.T, s.HD, s.T, 1.0f, p, s.T, v, row, 0.0f,
            out + static_cast<int64_t>(b) * s.T * C + static_cast<int64_t>(h) * s.HD, C);
    }
  }
}

void attention_backward(float* dqkv, float* datt_scratch, const float* dout, const float* qkv,
                        const float* att, const AttentionShape& s) {
  const int64_t row = s.qkv_row();
  const int64_t C = static_cast<int64_t>(s.NH) * s.HD;
  const int group = s.NH / s.NKV;
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.HD));
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
      const float* p = att + (static_cast<int64_t>(b) * s.NH + h) * s.T * s.T;
      const float* dout_h = dout + static_cast<int64_t>(b) * s.T * C + qo;
      // dp (T, T) = dout_h v^T; dv += p^T dout_h.
      sgemm(false, true, s.T, s.T, s.HD, 1.0f, dout_h, C, base + vo, row, 0.0f, dp, s.T);
      sgemm(true, false, s.T, s.HD, s.T, 1.0f, p, s.T, dout_h, C, 1.0f, dbase + vo, row);
      // ds = p * (dp - rowsum(dp * p)) * scale, in place.
      causal_softmax_backward_rows(dp, p, s.T, s.T, scale, s.window);
      // dq = ds k; dk += ds^T q.
      sgemm(false, false, s.T, s.HD, s.T, 1.0f, dp, s.T, base + ko, row, 0.0f, dbase + qo, row);
      sgemm(true, false, s.T, s.HD, s.T, 1.0f, dp, s.T, base + qo, row, 1.0f, dbase + ko, row);
    }
  }
}

}  // namespace strata::kernels
