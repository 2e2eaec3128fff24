// First-order optimizer pieces for CPU training: fused AdamW over the parameter arena (decoupled
// weight decay skipped for norms and biases by tensor role), global-norm gradient clipping, and
// a linear-warmup + cosine learning-rate schedule.
//
// One AdamW step reads params, grads, m, v and writes params, m, v once: a single fused,
// vectorized (dispatched AVX-512/AVX2) and multi-threaded pass, tiled by tensor.
#ifndef STRATA_RUNTIME_OPTIM_ADAMW_H_
#define STRATA_RUNTIME_OPTIM_ADAMW_H_

#include <cstdint>

#include "absl/types/span.h"
#include "runtime/base/aligned_buffer.h"
#include "runtime/model/param_layout.h"

namespace strata {

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
};

// params -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * params), PyTorch's AdamW, for
// elements [0, n). `step` counts from 1. Elementwise, so the bits do not depend on `parallel`
// (the compute thread pool) or not (the calling thread only: for a thread outside the pool's
// callers, e.g. a communicator's). With `compute_copy`, the same pass also writes each updated
// parameter rounded to bfloat16 there (nearest even: FloatToBf16's bits; a NaN as the quiet
// NaN) — the bf16 compute copy beside the fp32 master weights.
void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n, float lr,
                  const AdamWConfig& config, int64_t step, bool parallel = true,
                  uint16_t* compute_copy = nullptr);

// adamw_update over arena elements [begin, end) of `layout`, with weight decay by tensor role;
// each pointer addresses element `begin` (so a partition or shard can be updated in place).
void AdamWOverRange(const ParamLayout& layout, const AdamWConfig& config, int64_t begin,
                    int64_t end, float* params, const float* grads, float* m, float* v, float lr,
                    int64_t step, bool parallel = true, uint16_t* compute_copy = nullptr);

// Sum of squares in double: fixed tiles summed in order, the same value for any thread count.
double SumOfSquares(absl::Span<const float> x);

class AdamW {
 public:
  AdamW(const ParamLayout& layout, AdamWConfig config);

  // One step over every tensor of the layout with learning rate `lr`.
  void Step(absl::Span<float> params, absl::Span<const float> grads, float lr);

  int64_t step() const { return step_; }
  void set_step(int64_t step) { step_ = step; }
  absl::Span<float> m() { return m_.span(); }
  absl::Span<float> v() { return v_.span(); }

 private:
  const ParamLayout& layout_;
  AdamWConfig config_;
  AlignedBuffer m_, v_;
  int64_t step_ = 0;
};

// Scales `grads` so its global L2 norm is at most `max_norm` (no-op when max_norm <= 0 or the
// norm is smaller). Returns the norm before clipping (computed in double, thread-count
// independent).
double ClipGradNorm(absl::Span<float> grads, double max_norm);


}  // namespace strata

#endif  // STRATA_RUNTIME_OPTIM_ADAMW_H_
