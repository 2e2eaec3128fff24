// Tiny model shapes for tests that run both families through the same code (offloaded ZO, the
// GPU stage): a few layers of width 32, grouped-query attention for LLaMA, tied head for GPT-2.
#ifndef STRATA_RUNTIME_TESTING_TINY_MODELS_H_
#define STRATA_RUNTIME_TESTING_TINY_MODELS_H_

#include "runtime/model/model_config.h"

namespace strata::testing_models {

inline ModelConfig Tiny(ModelFamily family, int n_layer = 5) {
  ModelConfig c;
  c.family = family;
  c.vocab_size = 53;
  c.max_seq_len = 16;
  c.n_layer = n_layer;
  c.n_head = 4;
  c.n_kv_head = family == ModelFamily::kLlama ? 2 : 4;
  c.d_model = 32;
  c.d_ff = 48;
  c.tie_embeddings = family == ModelFamily::kGpt2;
  return c;
}

}  // namespace strata::testing_models

#endif  // STRATA_RUNTIME_TESTING_TINY_MODELS_H_
