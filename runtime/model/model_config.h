// Transformer hyperparameters, read from a Hugging Face config.json, for the two supported
// families: GPT-2 (learned positions, LayerNorm, GELU-tanh, biases, tied embeddings) and LLaMA
// (RoPE, RMSNorm, SwiGLU, grouped-query attention, no biases, untied head by default).
// Anything the runtime does not implement (another activation, rope_scaling, attention biases
// on LLaMA) is rejected with the config key named, rather than silently computed differently.
#ifndef STRATA_RUNTIME_MODEL_MODEL_CONFIG_H_
#define STRATA_RUNTIME_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace strata {

enum class ModelFamily { kGpt2, kLlama };

absl::string_view ModelFamilyName(ModelFamily family);

// LLaMA's rope_scaling: how the rotary frequencies are stretched for long contexts
// (rope_frequencies.h computes them as Hugging Face transformers does).
struct RopeScaling {
  enum class Kind { kNone, kLinear, kLlama3 };
  Kind kind = Kind::kNone;
  float factor = 1.0f;                          // linear, llama3
  float low_freq_factor = 1.0f;                 // llama3
  float high_freq_factor = 4.0f;                // llama3
  int original_max_position_embeddings = 8192;  // llama3
};

struct ModelConfig {
  ModelFamily family = ModelFamily::kGpt2;
  int vocab_size = 0;
  int max_seq_len = 0;  // n_positions / max_position_embeddings.
  int n_layer = 0;
  int n_head = 0;
  int n_kv_head = 0;  // == n_head for GPT-2.
  int d_model = 0;    // n_embd / hidden_size.
  int d_ff = 0;       // n_inner (default 4 * d_model) / intermediate_size.
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;  // LLaMA only.
  RopeScaling rope_scaling;     // LLaMA only.
  bool tie_embeddings = true;   // Output head shares the token embedding.

  int head_dim() const { return d_model / n_head; }
  // Parameters in the model (tied tensors counted once).
  int64_t NumParameters() const;
};

// GPT-2 small (124M parameters): vocabulary 50257, 1024 positions, 12 layers and heads, 768 wide.
ModelConfig Gpt2SmallConfig();

// Checks the invariants the kernels rely on (positive sizes, heads divide d_model, kv heads
// divide heads, even head_dim for RoPE); the message names the offending key.
absl::Status ValidateModelConfig(const ModelConfig& config);

// Parses config.json text. `source` (a file name) prefixes error messages.
absl::StatusOr<ModelConfig> ParseHfConfig(absl::string_view json_text, absl::string_view source);

// Reads and parses `path`.
absl::StatusOr<ModelConfig> ReadHfConfig(const std::string& path);

// A config.json that ParseHfConfig reads back to the same ModelConfig and Hugging Face
// transformers loads as the same architecture.
std::string ToHfConfigJson(const ModelConfig& config);

}  // namespace strata

#endif  // STRATA_RUNTIME_MODEL_MODEL_CONFIG_H_
