// See rope_frequencies.h. The llama3 rule follows transformers'
// _compute_llama3_parameters: wavelength = 2 pi / inv_freq; above
// original_max_position_embeddings / low_freq_factor it is divided by `factor`; below
// original_max_position_embeddings / high_freq_factor it is kept; between, it is
// (1 - s) * inv_freq / factor + s * inv_freq with
// s = (original_max_position_embeddings / wavelength - low_freq_factor) /
//     (high_freq_factor - low_freq_factor).
#include "runtime/model/rope_frequencies.h"

#include <cmath>

namespace strata {

std::vector<float> RopeInvFreq(const ModelConfig& c) {
  const int hd = c.head_dim(), half = hd / 2;
  const RopeScaling& rs = c.rope_scaling;
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; ++i) {
    // theta^(-2i/hd) in double, rounded to float32 as torch's float arange gives it.
    const float base = static_cast<float>(
        1.0 / std::pow(static_cast<double>(c.rope_theta), static_cast<double>(2 * i) / hd));
    switch (rs.kind) {
      case RopeScaling::Kind::kNone:
        inv_freq[i] = base;
        break;
      case RopeScaling::Kind::kLinear:
        inv_freq[i] = base / rs.factor;
        break;
      case RopeScaling::Kind::kLlama3: {
        const float old_len = static_cast<float>(rs.original_max_position_embeddings);
        const float low_freq_wavelen = old_len / rs.low_freq_factor;
        const float high_freq_wavelen = old_len / rs.high_freq_factor;
        const float wavelen = 2.0f * static_cast<float>(M_PI) / base;
        if (wavelen > low_freq_wavelen) {
          inv_freq[i] = base / rs.factor;
        } else if (wavelen < high_freq_wavelen) {
          inv_freq[i] = base;
        } else {
          const float smooth =
              (old_len / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
          inv_freq[i] = (1.0f - smooth) * base / rs.factor + smooth * base;
        }
        break;
      }
    }
  }
  return inv_freq;
}

}  // namespace strata
