// Choosing the next token from one position's logits: greedy (argmax) or sampling with a
// temperature, top-k and top-p (nucleus) filtering, applied in that order as Hugging Face's
// generate applies its logits warpers. Draws are counter-based: draw `step` under `seed` is one
// SplitMix64 value of (seed, step), so the same seed gives the same tokens on every machine,
// thread count and decoding path (with or without a cache), whatever was drawn before.
#ifndef STRATA_RUNTIME_GENERATE_SAMPLING_H_
#define STRATA_RUNTIME_GENERATE_SAMPLING_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace strata {

struct SamplingOptions {
  // 0: greedy (the argmax; top_k and top_p must stay unset). > 0: logits are divided by it and
  // a token is drawn from the filtered softmax.
  float temperature = 0.0f;
  // > 0: only the top_k most likely tokens are candidates. 0: no limit.
  int top_k = 0;
  // In (0, 1]: only the smallest set of most likely tokens whose probabilities sum to at least
  // top_p is kept (a token is kept when the tokens more likely than it sum to less than top_p).
  // 1: no filter.
  float top_p = 1.0f;
  uint64_t seed = 0;
};

// Fails naming the field: temperature < 0 or not finite, top_k < 0, top_p outside (0, 1], or
// top_k / top_p set with greedy decoding.
absl::Status ValidateSampling(const SamplingOptions& options);

// The index of the largest logit (the lowest index among equal ones).
int32_t Argmax(absl::Span<const float> logits);

struct Candidate {
  int32_t id = 0;
  double probability = 0;
};

// The tokens sampling draws from and their probabilities (summing to 1), most likely first
// (equal logits: lower id first): softmax(logits / temperature) restricted by top_k, then by
// top_p, renormalized. Needs temperature > 0.
std::vector<Candidate> FilteredDistribution(absl::Span<const float> logits,
                                            const SamplingOptions& options);

// The uniform in (0, 1) of draw `step` under `seed`.
double DrawUniform(uint64_t seed, int64_t step);

// The token of draw `step`: the argmax with temperature 0, else the candidate of
// FilteredDistribution whose cumulative probability first exceeds DrawUniform(seed, step).
int32_t ChooseToken(absl::Span<const float> logits, const SamplingOptions& options, int64_t step);

}  // namespace strata

#endif  // STRATA_RUNTIME_GENERATE_SAMPLING_H_
