// See sampling.h. Probabilities are computed in double from the float logits, so a draw depends
// only on the logits' bits, the options and the counter.
#include "runtime/generate/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "runtime/base/splitmix.h"

namespace strata {
namespace {

// NaN sorts below every number.
double Key(float logit) {
  return std::isnan(logit) ? -std::numeric_limits<double>::infinity() : static_cast<double>(logit);
}

}  // namespace

absl::Status ValidateSampling(const SamplingOptions& options) {
  if (!(options.temperature >= 0.0f) || std::isinf(options.temperature)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature ", options.temperature,
                                                   " must be 0 (greedy) or a positive number"));
  }
  if (options.top_k < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_k ", options.top_k, " must be >= 0 (0: no limit)"));
  }
  if (!(options.top_p > 0.0f && options.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_p ", options.top_p, " must be in (0, 1] (1: no filter)"));
  }
  if (options.temperature == 0.0f && (options.top_k != 0 || options.top_p != 1.0f)) {
    return absl::InvalidArgumentError(
        "top_k and top_p filter sampling: they need a temperature > 0 (0 is greedy decoding)");
  }
  return absl::OkStatus();
}

int32_t Argmax(absl::Span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (Key(logits[i]) > Key(logits[best])) best = static_cast<int32_t>(i);
  }
  return best;
}

std::vector<Candidate> FilteredDistribution(absl::Span<const float> logits,
                                            const SamplingOptions& options) {
  const int64_t V = static_cast<int64_t>(logits.size());
  std::vector<int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  const auto more_likely = [&logits](int32_t a, int32_t b) {
    const double ka = Key(logits[a]), kb = Key(logits[b]);
    return ka > kb || (ka == kb && a < b);
  };
  // top_k: the k most likely, in order.
  const int64_t kept = options.top_k > 0 ? std::min<int64_t>(options.top_k, V) : V;
  std::partial_sort(order.begin(), order.begin() + kept, order.end(), more_likely);
  order.resize(kept);
  // Softmax of logits / temperature over the kept tokens.
  const double inv_t = 1.0 / static_cast<double>(options.temperature);
  const double top = Key(logits[order[0]]) * inv_t;
  std::vector<Candidate> out(kept);
  double total = 0;
  for (int64_t i = 0; i < kept; ++i) {
    const double p = std::exp(Key(logits[order[i]]) * inv_t - top);
    out[i] = {order[i], p};
    total += p;
  }
  // top_p: keep a token while the tokens before it (more likely) sum to less than top_p.
  int64_t n = kept;
  if (options.top_p < 1.0f) {
    double before = 0;
    for (int64_t i = 0; i < kept; ++i) {
      if (i > 0 && before >= static_cast<double>(options.top_p)) {
        n = i;
        break;
      }
      before += out[i].probability / total;
    }
  }
  out.resize(n);
  double sum = 0;
  for (const Candidate& c : out) sum += c.probability;
  for (Candidate& c : out) c.probability /= sum;
  return out;
}

double DrawUniform(uint64_t seed, int64_t step) {
  // One stream per draw: the draw of step s does not depend on how many came before.
  uint64_t state = seed ^ (0xA0761D6478BD642FULL * (static_cast<uint64_t>(step) + 1));
  return UniformOpen01(state);
}

int32_t ChooseToken(absl::Span<const float> logits, const SamplingOptions& options, int64_t step) {
  if (options.temperature == 0.0f) return Argmax(logits);
  const std::vector<Candidate> candidates = FilteredDistribution(logits, options);
  const double u = DrawUniform(options.seed, step);
  double cumulative = 0;
  for (const Candidate& c : candidates) {
    cumulative += c.probability;
    if (u < cumulative) return c.id;
  }
  return candidates.back().id;  // Rounding left the sum just under u.
}

}  // namespace strata
