// The rotary embedding's inverse frequencies of a RoPE-family model, as Hugging Face
// transformers computes them: theta^(-2i/head_dim), then stretched by rope_scaling (linear:
// all divided by `factor`; llama3: long wavelengths divided by `factor`, short ones kept, the
// band between interpolated; yarn: interpolated and extrapolated frequencies blended by a
// linear ramp between the beta_fast and beta_slow correction dimensions, and cos/sin scaled by
// an attention factor). Computed once per model; the CPU kernels and the GPU block executor
// both take this table.
#ifndef STRATA_RUNTIME_MODEL_ROPE_FREQUENCIES_H_
#define STRATA_RUNTIME_MODEL_ROPE_FREQUENCIES_H_

#include <vector>

#include "runtime/model/model_config.h"

namespace strata {

// head_dim / 2 values.
std::vector<float> RopeInvFreq(const ModelConfig& config);

// What cos and sin are multiplied by (yarn's attention factor; 1 otherwise): q and k each
// come out of the rotation scaled by it.
float RopeAttentionScale(const ModelConfig& config);

}  // namespace strata

#endif  // STRATA_RUNTIME_MODEL_ROPE_FREQUENCIES_H_
