// See adamw.h.
#include "runtime/optim/adamw.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "runtime/base/thread_pool.h"
#include "runtime/kernels/cpu_dispatch.h"

namespace strata {
namespace {

constexpr int64_t kTile = 16384;

// One step's constants: the bias corrections folded as PyTorch folds them (step size lr / bc1,
// denominator sqrt(v) / sqrt(bc2) + eps), leaving one square root and one division an element.
struct StepConstants {
  float b1, b2, eps, lr_wd, step_size, inv_sqrt_bc2;
};

// The updated parameter; m and v are updated in place.
inline float AdamWElement(float p, float g, float& m, float& v, const StepConstants& k) {
  const float mi = k.b1 * m + (1.0f - k.b1) * g;
  const float vi = k.b2 * v + (1.0f - k.b2) * g * g;
  m = mi;
  v = vi;
  const float denom = std::sqrt(vi) * k.inv_sqrt_bc2 + k.eps;
  return p - k.lr_wd * p - k.step_size * mi / denom;
}

STRATA_CPU_CLONES void AdamWTile(float* p, const float* g, float* m, float* v, int64_t n,
                                 StepConstants k) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) p[i] = AdamWElement(p[i], g[i], m[i], v[i], k);
}

// AdamWTile that also stores the new parameters as bf16 (round to nearest even; NaN as the
// canonical quiet NaN).
STRATA_CPU_CLONES void AdamWTileBf16(float* p, const float* g, float* m, float* v, uint16_t* out,
                                     int64_t n, StepConstants k) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float pi = AdamWElement(p[i], g[i], m[i], v[i], k);
    p[i] = pi;
    // Round to nearest even; a NaN becomes the canonical quiet NaN first (of the selects tried,
    // the float one costs least).
    const float q = pi != pi ? std::numeric_limits<float>::quiet_NaN() : pi;
    uint32_t bits;
    std::memcpy(&bits, &q, 4);
    out[i] = static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
  }
}

STRATA_CPU_CLONES double SquaredSum(const float* x, int64_t n) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  return sum;
}

STRATA_CPU_CLONES void ScaleTile(float* x, int64_t n, float s) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

}  // namespace

void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n, float lr,
                  const AdamWConfig& c, int64_t step, bool parallel, uint16_t* compute_copy) {
  const float bc1 = 1.0f - std::pow(c.beta1, static_cast<float>(step));
  const float bc2 = 1.0f - std::pow(c.beta2, static_cast<float>(step));
  const StepConstants k{
      c.beta1, c.beta2, c.eps, lr * c.weight_decay, lr / bc1, 1.0f / std::sqrt(bc2)};
  const int64_t tiles = (n + kTile - 1) / kTile;
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t i = t * kTile;
      if (compute_copy != nullptr) {
        AdamWTileBf16(params + i, grads + i, m + i, v + i, compute_copy + i, std::min(kTile, n - i),
                      k);
      } else {
        AdamWTile(params + i, grads + i, m + i, v + i, std::min(kTile, n - i), k);
      }
    }
  };
  if (parallel) {
    ParallelFor(tiles, run);
  } else {
    run(0, tiles);
  }
}

AdamW::AdamW(const ParamLayout& layout, AdamWConfig config)
    : layout_(layout), config_(config), m_(layout.NumElements()), v_(layout.NumElements()) {}

void AdamWOverRange(const ParamLayout& layout, const AdamWConfig& config, int64_t begin,
                    int64_t end, float* params, const float* grads, float* m, float* v, float lr,
                    int64_t step, bool parallel, uint16_t* compute_copy) {
  AdamWConfig no_decay = config;
  no_decay.weight_decay = 0.0f;
  for (const TensorInfo& t : layout.tensors()) {
    const int64_t lo = std::max(begin, t.offset), hi = std::min(end, t.offset + t.numel);
    if (lo >= hi) continue;
    const int64_t at = lo - begin;
    adamw_update(params + at, grads + at, m + at, v + at, hi - lo, lr,
                 RoleTakesWeightDecay(t.role) ? config : no_decay, step, parallel,
                 compute_copy != nullptr ? compute_copy + at : nullptr);
  }
}

void AdamW::Step(absl::Span<float> params, absl::Span<const float> grads, float lr) {
  ++step_;
  AdamWOverRange(layout_, config_, 0, layout_.NumElements(), params.data(), grads.data(), m_.data(),
                 v_.data(), lr, step_);
}

double SumOfSquares(absl::Span<const float> x) {
  const int64_t n = static_cast<int64_t>(x.size());
  const int64_t tiles = (n + kTile - 1) / kTile;
  std::vector<double> partial(tiles);
  ParallelFor(tiles, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      partial[t] = SquaredSum(x.data() + t * kTile, std::min(kTile, n - t * kTile));
    }
  });
  double total = 0.0;
  for (double p : partial) total += p;  // Fixed order: independent of the thread count.
  return total;
}

double ClipGradNorm(absl::Span<float> grads, double max_norm) {
  const int64_t n = static_cast<int64_t>(grads.size());
  const int64_t tiles = (n + kTile - 1) / kTile;
  const double total = SumOfSquares(grads);
  const double norm = std::sqrt(total);
  if (max_norm > 0 && norm > max_norm) {
    const float scale = static_cast<float>(max_norm / (norm + 1e-6));
    ParallelFor(tiles, [&](int64_t begin_, int64_t end_) {
      for (int64_t t = static_cast<int64_t>(begin_); t < end_; ++t) {
        ScaleTile(grads.data() + t * kTile, std::min(kTile, n - t * kTile), scale);
      }
    });
  }
  return norm;
}


}  // namespace strata
