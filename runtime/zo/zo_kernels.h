// Zeroth-order kernels: the perturbation noise z (Philox4x32-10 + a fixed-arithmetic Gaussian
// or Rademacher transform, docs/zo-rng.md), generated tile by tile and consumed at once —
// perturbing weights out of place (theta +- eps z) and applying updates (SGD/sign, momentum,
// Adam) — never materialized for a whole tensor.
//
// Element k of tensor `tensor` under (seed, stream) is the same value however the work is
// split into tiles, threads, blocks or machines. Updates use fixed operation order without
// fused multiply-add, so replaying a step log reproduces weights bit for bit.
#ifndef STRATA_RUNTIME_ZO_ZO_KERNELS_H_
#define STRATA_RUNTIME_ZO_ZO_KERNELS_H_

#include <cstdint>
#include <limits>

namespace strata::zo {

enum class Distribution { kGaussian, kRademacher };

// Which noise: one perturbation of one step.
struct NoiseKey {
  uint64_t seed = 0;
  uint32_t stream = 0;  // Perturbation index within the step (n-SPSA).
  Distribution distribution = Distribution::kGaussian;
};

// Weights with |theta| >= threshold are neither perturbed nor updated (Sparse-MeZO).
inline constexpr float kNoMask = std::numeric_limits<float>::infinity();

// "avx512", "avx2" or "baseline".
const char* ZoKernelIsa();

// One Philox4x32-10 block (for known-answer tests).
void Philox(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

// GenerateNoise with one instruction-set variant ("avx512", "avx2", "baseline"), for tests that
// check the variants agree bit for bit. Uses the current CPU's variant for unknown names.
void GenerateNoiseWithIsa(const char* isa, float* z, int64_t first, int64_t n, uint32_t tensor,
                          const NoiseKey& key);

// z[i] = element first + i of `tensor`, i < n.
void GenerateNoise(float* z, int64_t first, int64_t n, uint32_t tensor, const NoiseKey& key);

// Over elements [first, first + n) of `tensor` (theta points at element `first`):
//   plus = theta + eps z and, when minus is not null, minus = theta - eps z.
void Perturb(float* plus, float* minus, const float* theta, int64_t first, int64_t n,
             uint32_t tensor, const NoiseKey& key, float eps, float threshold);

//   theta = (theta - coef z) - decay theta.
void UpdateSgd(float* theta, int64_t first, int64_t n, uint32_t tensor, const NoiseKey& key,
               float coef, float decay, float threshold);

//   m = beta m + g z;  theta = (theta - lr m) - decay theta.
void UpdateMomentum(float* theta, float* m, int64_t first, int64_t n, uint32_t tensor,
                    const NoiseKey& key, float g, float beta, float lr, float decay,
                    float threshold);

//   Adam on g z (bias corrections bc1 = 1 - b1^t, bc2 = 1 - b2^t).
void UpdateAdam(float* theta, float* m, float* v, int64_t first, int64_t n, uint32_t tensor,
                const NoiseKey& key, float g, float b1, float b2, float eps, float bc1, float bc2,
                float lr, float decay, float threshold);

}  // namespace strata::zo

#endif  // STRATA_RUNTIME_ZO_ZO_KERNELS_H_
