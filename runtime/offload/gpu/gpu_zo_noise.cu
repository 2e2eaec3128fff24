// The ZO perturbation noise on the device: Philox4x32-10 and the fixed-arithmetic Gaussian of
// docs/zo-rng.md, the same statements as runtime/zo/zo_kernels.inc. Compiled with -fmad=false
// (no fused multiply-add contraction) and IEEE sqrt/division, so every value — noise, perturbed
// weights, updated weights — is bitwise the CPU's.
#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/offload/gpu/gpu_kernels.h"

namespace strata::gpu {
namespace {

__device__ __forceinline__ void Philox(uint64_t block, uint32_t tensor, uint32_t stream,
                                       uint64_t seed, uint32_t w[4]) {
  uint32_t c0 = static_cast<uint32_t>(block), c1 = static_cast<uint32_t>(block >> 32);
  uint32_t c2 = tensor, c3 = stream;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  w[0] = c0;
  w[1] = c1;
  w[2] = c2;
  w[3] = c3;
}

__device__ __forceinline__ float FixedLog(float u) {
  const uint32_t bits = __float_as_uint(u);
  int32_t e = static_cast<int32_t>(bits >> 23) - 127;
  float m = __uint_as_float((bits & 0x007FFFFFu) | 0x3F800000u);
  const bool high = m > 1.41421356f;
  m = high ? m * 0.5f : m;
  e = high ? e + 1 : e;
  const float x = m - 1.0f;
  const float z = x * x;
  float p = 7.0376836292e-2f;
  p = p * x - 1.1514610310e-1f;
  p = p * x + 1.1676998740e-1f;
  p = p * x - 1.2420140846e-1f;
  p = p * x + 1.4249322787e-1f;
  p = p * x - 1.6668057665e-1f;
  p = p * x + 2.0000714765e-1f;
  p = p * x - 2.4999993993e-1f;
  p = p * x + 3.3333331174e-1f;
  const float fe = static_cast<float>(e);
  float y = x * z * p;
  y = y + -2.12194440e-4f * fe;
  y = y - 0.5f * z;
  float r = x + y;
  r = r + 0.693359375f * fe;
  return r;
}

__device__ __forceinline__ void BoxMuller(uint32_t a, uint32_t b, float* z0, float* z1) {
  const float u1 = static_cast<float>((a >> 8) + 1u) * 5.9604644775390625e-8f;
  const float t = static_cast<float>(b >> 8) * 2.384185791015625e-7f;
  const float radius = sqrtf(-2.0f * FixedLog(u1));
  int32_t q = static_cast<int32_t>(t);
  float f = t - static_cast<float>(q);
  const bool up = f >= 0.5f;
  f = up ? f - 1.0f : f;
  q = up ? q + 1 : q;
  const float x = f * 1.57079632679489662f;
  const float zz = x * x;
  float s = -1.9515295891e-4f;
  s = s * zz + 8.3321608736e-3f;
  s = s * zz - 1.6666654611e-1f;
  s = s * zz * x + x;
  float c = 2.443315711809948e-5f;
  c = c * zz - 1.388731625493765e-3f;
  c = c * zz + 4.166664568298827e-2f;
  c = c * zz * zz - 0.5f * zz + 1.0f;
  const bool odd = (q & 1) != 0;
  const float first_part = odd ? s : c;
  const float second_part = odd ? c : s;
  const float cos_v = ((q + 1) & 2) != 0 ? -first_part : first_part;
  const float sin_v = (q & 2) != 0 ? -second_part : second_part;
  *z0 = radius * cos_v;
  *z1 = radius * sin_v;
}

// The four noise values of Philox block j (elements 4j .. 4j+3).
__device__ __forceinline__ void NoiseBlock(uint64_t j, uint32_t tensor, uint32_t stream,
                                           uint64_t seed, bool rademacher, float z[4]) {
  uint32_t w[4];
  Philox(j, tensor, stream, seed, w);
  if (rademacher) {
    for (int r = 0; r < 4; ++r) z[r] = (w[r] >> 31) != 0 ? -1.0f : 1.0f;
  } else {
    BoxMuller(w[0], w[1], &z[0], &z[1]);
    BoxMuller(w[2], w[3], &z[2], &z[3]);
  }
}

enum class Op { kNoise, kPerturb, kUpdate };

// One thread per Philox block, grid-stride.
template <Op op>
__global__ void ZoKernel(float* out, float* minus, const float* theta, int64_t n, uint32_t tensor,
                         uint64_t seed, uint32_t stream, bool rademacher, float scale, float decay,
                         float threshold) {
  const int64_t blocks = (n + 3) / 4;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < blocks;
       j += stride) {
    float z[4];
    NoiseBlock(static_cast<uint64_t>(j), tensor, stream, seed, rademacher, z);
    for (int r = 0; r < 4; ++r) {
      const int64_t k = 4 * j + r;
      if (k >= n) break;
      if (op == Op::kNoise) {
        out[k] = z[r];
        continue;
      }
      const float a = op == Op::kPerturb ? theta[k] : out[k];
      const float mag = a < 0.0f ? -a : a;
      if (op == Op::kPerturb) {
        const float t = mag < threshold ? scale * z[r] : 0.0f;
        out[k] = a + t;
        if (minus != nullptr) minus[k] = a - t;
      } else {
        const float step = mag < threshold ? scale * z[r] : 0.0f;
        const float d = decay * a;
        out[k] = (a - step) - d;
      }
    }
  }
}

int Grid(int64_t n) {
  const int64_t blocks = ((n + 3) / 4 + 255) / 256;
  return static_cast<int>(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}

}  // namespace

int ZoPerturb(Stream s, float* plus, float* minus, const float* theta, int64_t n, uint32_t tensor,
              uint64_t seed, uint32_t stream_index, bool rademacher, float eps, float threshold) {
  ZoKernel<Op::kPerturb><<<Grid(n), 256, 0, static_cast<cudaStream_t>(s)>>>(
      plus, minus, theta, n, tensor, seed, stream_index, rademacher, eps, 0.0f, threshold);
  return static_cast<int>(cudaGetLastError());
}

int ZoUpdateSgd(Stream s, float* theta, int64_t n, uint32_t tensor, uint64_t seed,
                uint32_t stream_index, bool rademacher, float coef, float decay, float threshold) {
  ZoKernel<Op::kUpdate><<<Grid(n), 256, 0, static_cast<cudaStream_t>(s)>>>(
      theta, nullptr, nullptr, n, tensor, seed, stream_index, rademacher, coef, decay, threshold);
  return static_cast<int>(cudaGetLastError());
}

int ZoNoise(Stream s, float* z, int64_t n, uint32_t tensor, uint64_t seed, uint32_t stream_index,
            bool rademacher) {
  ZoKernel<Op::kNoise><<<Grid(n), 256, 0, static_cast<cudaStream_t>(s)>>>(
      z, nullptr, nullptr, n, tensor, seed, stream_index, rademacher, 0.0f, 0.0f, 0.0f);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace strata::gpu
