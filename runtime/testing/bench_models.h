// Model shapes the benchmarks share: LLaMA-shaped models too large for the memory budgets they
// run under.
#ifndef STRATA_RUNTIME_TESTING_BENCH_MODELS_H_
#define STRATA_RUNTIME_TESTING_BENCH_MODELS_H_

#include "runtime/model/model_config.h"

namespace strata::bench {

// 2.05B parameters (TinyLlama's width at 42 layers, tied head): 8.2 GB of fp32 weights.
inline ModelConfig Llama2B() {
  ModelConfig c;
  c.family = ModelFamily::kLlama;
  c.vocab_size = 32000;
  c.max_seq_len = 2048;
  c.n_layer = 42;
  c.n_head = 16;
  c.n_kv_head = 8;
  c.d_model = 2048;
  c.d_ff = 5632;
  c.norm_eps = 1e-5f;
  c.tie_embeddings = true;
  return c;
}

// Llama-2-7b's config.json: 6.74B parameters.
inline ModelConfig Llama7B() {
  ModelConfig c;
  c.family = ModelFamily::kLlama;
  c.vocab_size = 32000;
  c.max_seq_len = 4096;
  c.n_layer = 32;
  c.n_head = 32;
  c.n_kv_head = 32;
  c.d_model = 4096;
  c.d_ff = 11008;
  c.norm_eps = 1e-5f;
  c.tie_embeddings = false;  // Its own lm_head.
  return c;
}

}  // namespace strata::bench

#endif  // STRATA_RUNTIME_TESTING_BENCH_MODELS_H_
