// See rope_frequencies.h. The llama3 rule follows transformers'
// _compute_llama3_parameters: wavelength = 2 pi / inv_freq; above
// original_max_position_embeddings / low_freq_factor it is divided by `factor`; below
// original_max_position_embeddings / high_freq_factor it is kept; between, it is
// (1 - s) * inv_freq / factor + s * inv_freq with
// s = (original_max_position_embeddings / wavelength - low_freq_factor) /
//     (high_freq_factor - low_freq_factor).
#include "runtime/model/rope_frequencies.h"

#include <algorithm>
#include <cmath>

namespace strata {
namespace {

// transformers' _compute_yarn_parameters, in float32 where it uses torch tensors.
std::vector<float> YarnInvFreq(const ModelConfig& c) {
  const RopeScaling& rs = c.rope_scaling;
  const int dim = c.head_dim(), half = dim / 2;
  const double base = c.rope_theta;
  auto correction_dim = [&](double rotations) {
    return dim * std::log(rs.original_max_position_embeddings / (rotations * 2 * M_PI)) /
           (2 * std::log(base));
  };
  double low = correction_dim(rs.beta_fast), high = correction_dim(rs.beta_slow);
  if (rs.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; ++i) {
    const float pos_freq = std::pow(static_cast<float>(base), static_cast<float>(2 * i) / dim);
    const float extrapolation = 1.0f / pos_freq;
    const float interpolation = 1.0f / (rs.factor * pos_freq);
    const float ramp =
        std::clamp(static_cast<float>((static_cast<float>(i) - low) / (high - low)), 0.0f, 1.0f);
    const float extrapolation_factor = 1.0f - ramp;
    inv_freq[i] =
        interpolation * (1.0f - extrapolation_factor) + extrapolation * extrapolation_factor;
  }
  return inv_freq;
}

double YarnMscale(double scale, double mscale) {
  return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

}  // namespace

float RopeAttentionScale(const ModelConfig& c) {
  const RopeScaling& rs = c.rope_scaling;
  if (rs.kind != RopeScaling::Kind::kYarn) return 1.0f;
  if (rs.attention_factor > 0) return rs.attention_factor;
  if (rs.mscale > 0 && rs.mscale_all_dim > 0) {
    return static_cast<float>(YarnMscale(rs.factor, rs.mscale) /
                              YarnMscale(rs.factor, rs.mscale_all_dim));
  }
  return static_cast<float>(YarnMscale(rs.factor, 1.0));
}

std::vector<float> RopeInvFreq(const ModelConfig& c) {
  if (c.rope_scaling.kind == RopeScaling::Kind::kYarn) return YarnInvFreq(c);
  const int hd = c.head_dim(), half = hd / 2;
  const RopeScaling& rs = c.rope_scaling;
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; ++i) {
    // theta^(-2i/hd) in double, rounded to float32 as torch's float arange gives it.
    const float base = static_cast<float>(
        1.0 / std::pow(static_cast<double>(c.rope_theta), static_cast<double>(2 * i) / hd));
    switch (rs.kind) {
      case RopeScaling::Kind::kNone:
      case RopeScaling::Kind::kYarn:  // Computed above.
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
