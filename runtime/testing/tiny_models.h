// Tiny model shapes for tests that run every family through the same code (offloaded ZO, ZO
// replay, the GPU stage): a few layers of width 32, and for each family the variant that
// exercises the most of its architecture (see WithFamilyFeatures).
#ifndef STRATA_RUNTIME_TESTING_TINY_MODELS_H_
#define STRATA_RUNTIME_TESTING_TINY_MODELS_H_

#include <vector>

#include "runtime/model/model_config.h"

namespace strata::testing_models {

// Turns on what sets `c.family` apart, on top of sizes already set: OPT as opt-350m lays it
// out (post-LayerNorm, project_in/project_out to half the width), Qwen2 with a sliding window
// of 5 on layers >= 1, Qwen3 with a head_dim wider than d_model / n_head, Mistral with both a
// head_dim and a window of 5. GPT-2 and LLaMA are left as they are.
inline ModelConfig WithFamilyFeatures(ModelConfig c) {
  switch (c.family) {
    case ModelFamily::kGpt2:
    case ModelFamily::kLlama:
      break;
    case ModelFamily::kOpt:
      c.n_kv_head = c.n_head;
      c.tie_embeddings = true;
      c.layer_norm_before = false;
      c.word_embed_proj_dim = c.d_model / 2;
      break;
    case ModelFamily::kQwen2:
      c.sliding_window = 5;
      c.window_from_layer = c.n_layer > 1 ? 1 : 0;
      break;
    case ModelFamily::kQwen3:
      c.explicit_head_dim = c.d_model / c.n_head + 2;
      break;
    case ModelFamily::kMistral:
      c.explicit_head_dim = c.d_model / c.n_head + 2;
      c.sliding_window = 5;
      break;
  }
  return c;
}

inline ModelConfig Tiny(ModelFamily family, int n_layer = 5) {
  ModelConfig c;
  c.family = family;
  c.vocab_size = 53;
  c.max_seq_len = 16;
  c.n_layer = n_layer;
  c.n_head = 4;
  c.n_kv_head = family == ModelFamily::kGpt2 ? 4 : 2;
  c.d_model = 32;
  c.d_ff = 48;
  c.tie_embeddings = family == ModelFamily::kGpt2 || family == ModelFamily::kQwen2;
  return WithFamilyFeatures(c);
}

// Every family, for parameterized tests.
inline std::vector<ModelFamily> AllFamilies() {
  int count = 0;
  const ModelFamily* all = AllModelFamilies(&count);
  return std::vector<ModelFamily>(all, all + count);
}

}  // namespace strata::testing_models

#endif  // STRATA_RUNTIME_TESTING_TINY_MODELS_H_
