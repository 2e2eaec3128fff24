// SplitMix64, the small counter-based generator the runtime's initializers draw from: one
// stream per tensor (TensorStream), uniforms in the open interval (0, 1) with 53 bits, and
// normals from them. Same seed, same uniforms on every platform (normals go through libm).
#ifndef STRATA_RUNTIME_BASE_SPLITMIX_H_
#define STRATA_RUNTIME_BASE_SPLITMIX_H_

#include <cmath>
#include <cstdint>

namespace strata {

inline uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Uniform in (0, 1), never 0 or 1.
inline double UniformOpen01(uint64_t& state) {
  return (static_cast<double>(SplitMix64(state) >> 11) + 0.5) * 0x1.0p-53;
}

// Standard normal from two uniform draws (Box-Muller, the cosine branch).
inline double Normal(uint64_t& state) {
  const double u1 = UniformOpen01(state);
  const double u2 = UniformOpen01(state);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// The starting state of tensor `id`'s stream under `seed`: each tensor's values do not depend on
// the others' sizes.
inline uint64_t TensorStream(uint64_t seed, int id) {
  return seed ^ (0xD1B54A32D192ED03ULL * (static_cast<uint64_t>(id) + 1));
}

}  // namespace strata

#endif  // STRATA_RUNTIME_BASE_SPLITMIX_H_
