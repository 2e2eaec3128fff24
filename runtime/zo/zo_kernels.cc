// See zo_kernels.h. zo_kernels.inc is compiled for AVX-512, AVX2 and baseline x86-64 inside
// `#pragma GCC target` regions; one set is chosen at start-up. Work is split into fixed tiles of
// kTile elements aligned to the tensor start and spread over the compute thread pool; each
// tile regenerates its own noise, so results do not depend on the thread count.
#include "runtime/zo/zo_kernels.h"

#include <bit>
#include <string>

#include "runtime/base/thread_pool.h"
#include "runtime/kernels/cpu_dispatch.h"

namespace strata::zo {
namespace {

namespace baseline {
#include "runtime/zo/zo_kernels.inc"
}  // namespace baseline

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq")
namespace avx512 {
#include "runtime/zo/zo_kernels.inc"
}  // namespace avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2")
namespace avx2 {
#include "runtime/zo/zo_kernels.inc"
}  // namespace avx2
#pragma GCC pop_options
#else
// Elsewhere (aarch64 edge clients) the baseline set, compiled for that machine, is the one.
namespace avx512 = baseline;
namespace avx2 = baseline;
#endif

struct ZoKernels {
  const char* isa;
  decltype(&baseline::NoiseTile) NoiseTile;
  decltype(&baseline::PerturbTile) PerturbTile;
  decltype(&baseline::UpdateTile) UpdateTile;
  decltype(&baseline::MomentumTile) MomentumTile;
  decltype(&baseline::AdamTile) AdamTile;
};

#define STRATA_ZO_KERNELS(ns) \
  ZoKernels { #ns, ns::NoiseTile, ns::PerturbTile, ns::UpdateTile, ns::MomentumTile, ns::AdamTile }

const ZoKernels& K() {
  static const ZoKernels k = [] {
    const std::string isa = kernels::DispatchedIsa();
    if (isa == "avx512") return STRATA_ZO_KERNELS(avx512);
    if (isa == "avx2") return STRATA_ZO_KERNELS(avx2);
    return STRATA_ZO_KERNELS(baseline);
  }();
  return k;
}

constexpr int kTile = 4096;

// Calls fn(offset, count, z) for the tiles of [0, n), z holding the tile's noise.
template <typename Fn>
void ForEachTile(int64_t first, int64_t n, uint32_t tensor, const NoiseKey& key, Fn fn) {
  const int64_t tiles = (n + kTile - 1) / kTile;
  const bool rademacher = key.distribution == Distribution::kRademacher;
  ParallelFor(tiles, [&](int64_t begin, int64_t end) {
    float z[kTile];
    for (int64_t t = begin; t < end; ++t) {
      const int64_t offset = t * kTile;
      const int count = static_cast<int>(n - offset < kTile ? n - offset : kTile);
      K().NoiseTile(z, first + offset, count, key.seed, tensor, key.stream, rademacher);
      fn(offset, count, z);
    }
  });
}

}  // namespace

const char* ZoKernelIsa() { return K().isa; }

void Philox(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
  baseline::Philox4x32_10(counter, key[0], key[1], out);
}

void GenerateNoiseWithIsa(const char* isa, float* z, int64_t first, int64_t n, uint32_t tensor,
                          const NoiseKey& key) {
  const std::string name = isa;
  auto tile = name == "baseline" ? baseline::NoiseTile
              : name == "avx2"   ? avx2::NoiseTile
              : name == "avx512" ? avx512::NoiseTile
                                 : K().NoiseTile;
  const bool rademacher = key.distribution == Distribution::kRademacher;
  for (int64_t offset = 0; offset < n; offset += kTile) {
    const int count = static_cast<int>(n - offset < kTile ? n - offset : kTile);
    tile(z + offset, first + offset, count, key.seed, tensor, key.stream, rademacher);
  }
}

void GenerateNoise(float* z, int64_t first, int64_t n, uint32_t tensor, const NoiseKey& key) {
  ForEachTile(first, n, tensor, key, [&](int64_t offset, int count, const float* tile) {
    for (int i = 0; i < count; ++i) z[offset + i] = tile[i];
  });
}

void Perturb(float* plus, float* minus, const float* theta, int64_t first, int64_t n,
             uint32_t tensor, const NoiseKey& key, float eps, float threshold) {
  ForEachTile(first, n, tensor, key, [&](int64_t offset, int count, const float* z) {
    K().PerturbTile(plus + offset, minus != nullptr ? minus + offset : nullptr, theta + offset, z,
                    count, eps, threshold);
  });
}

void UpdateSgd(float* theta, int64_t first, int64_t n, uint32_t tensor, const NoiseKey& key,
               float coef, float decay, float threshold) {
  ForEachTile(first, n, tensor, key, [&](int64_t offset, int count, const float* z) {
    K().UpdateTile(theta + offset, z, count, coef, decay, threshold);
  });
}

void UpdateMomentum(float* theta, float* m, int64_t first, int64_t n, uint32_t tensor,
                    const NoiseKey& key, float g, float beta, float lr, float decay,
                    float threshold) {
  ForEachTile(first, n, tensor, key, [&](int64_t offset, int count, const float* z) {
    K().MomentumTile(theta + offset, m + offset, z, count, g, beta, lr, decay, threshold);
  });
}

void UpdateAdam(float* theta, float* m, float* v, int64_t first, int64_t n, uint32_t tensor,
                const NoiseKey& key, float g, float b1, float b2, float eps, float bc1, float bc2,
                float lr, float decay, float threshold) {
  ForEachTile(first, n, tensor, key, [&](int64_t offset, int count, const float* z) {
    K().AdamTile(theta + offset, m + offset, v + offset, z, count, g, b1, b2, eps, bc1, bc2, lr,
                 decay, threshold);
  });
}

}  // namespace strata::zo
