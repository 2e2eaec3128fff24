// Transformer hyperparameters, read from a Hugging Face config.json, for the supported
// decoder-only families:
//   gpt2     learned positions, LayerNorm, GELU-tanh, biases everywhere, tied head
//   opt      learned positions offset by 2, LayerNorm, ReLU, biases everywhere, tied head;
//            pre- or post-LayerNorm (do_layer_norm_before), optional project_in/project_out
//            when word_embed_proj_dim differs from hidden_size
//   llama    RoPE (optionally scaled), RMSNorm, SwiGLU, grouped-query attention; biases when
//            attention_bias / mlp_bias; explicit head_dim
//   mistral  llama with explicit head_dim and a sliding attention window
//   qwen2    llama with q/k/v biases (none on o), optional sliding window on upper layers
//   qwen3    llama with per-head RMSNorm on q and k before RoPE, explicit head_dim
// Every family's block is described by an Architecture (norm, activation, biases, positions)
// that the kernels follow. A key that changes the maths and is not implemented is rejected with
// its name, rather than silently computed differently.
#ifndef STRATA_RUNTIME_MODEL_MODEL_CONFIG_H_
#define STRATA_RUNTIME_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace strata {

enum class ModelFamily { kGpt2, kLlama, kOpt, kQwen2, kQwen3, kMistral };

// "gpt2", "llama", "opt", "qwen2", "qwen3", "mistral": the config.json model_type.
absl::string_view ModelFamilyName(ModelFamily family);
// All families, in declaration order.
const ModelFamily* AllModelFamilies(int* count);

enum class MlpKind { kGeluTanh, kRelu, kSwiGlu };

// What a family's block computes, derived from the config (ModelConfig::arch()).
struct Architecture {
  bool layer_norm = false;         // LayerNorm with bias; otherwise RMSNorm without.
  MlpKind mlp = MlpKind::kSwiGlu;  // kSwiGlu: fused [gate | up] then down.
  bool learned_positions = false;  // Position table added to the embedding; otherwise RoPE.
  int position_offset = 0;         // Row of the table position 0 reads (OPT: 2).
  bool qkv_bias = false;
  bool o_bias = false;
  bool mlp_bias = false;
  bool qk_norm = false;    // Per-head RMSNorm of q and k before RoPE (Qwen3).
  bool pre_norm = true;    // Norm before attention/MLP; false: after each residual add (OPT-350m).
  bool final_norm = true;  // A norm after the last block.
  bool projections = false;  // project_in / project_out between embed_dim and d_model (OPT).
};

// LLaMA's rope_scaling: how the rotary frequencies are stretched for long contexts
// (rope_frequencies.h computes them as Hugging Face transformers does).
struct RopeScaling {
  enum class Kind { kNone, kLinear, kLlama3, kYarn };
  Kind kind = Kind::kNone;
  float factor = 1.0f;                          // linear, llama3, yarn
  float low_freq_factor = 1.0f;                 // llama3
  float high_freq_factor = 4.0f;                // llama3
  int original_max_position_embeddings = 8192;  // llama3, yarn
  float beta_fast = 32.0f;                      // yarn
  float beta_slow = 1.0f;                       // yarn
  float mscale = 0.0f;                          // yarn; 0: unset
  float mscale_all_dim = 0.0f;                  // yarn; 0: unset
  float attention_factor = 0.0f;                // yarn; 0: derived from factor and mscale
  bool truncate = true;                         // yarn
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
  float rope_theta = 10000.0f;     // RoPE families.
  RopeScaling rope_scaling;        // RoPE families.
  bool tie_embeddings = true;      // Output head shares the token embedding.
  int explicit_head_dim = 0;       // config head_dim; 0: d_model / n_head.
  bool attention_bias = false;     // llama, qwen3: biases on q, k, v and o.
  bool mlp_bias = false;           // llama: biases on gate, up and down.
  bool layer_norm_before = true;   // opt: do_layer_norm_before.
  bool remove_final_norm = false;  // opt: _remove_final_layer_norm.
  int word_embed_proj_dim = 0;     // opt: embedding width; 0: d_model.
  // Sliding-window attention: 0 for none; otherwise each token attends to the last
  // `sliding_window` positions including itself, in layers >= window_from_layer.
  int sliding_window = 0;
  int window_from_layer = 0;  // qwen2/qwen3: max_window_layers; mistral: 0.

  int head_dim() const { return explicit_head_dim > 0 ? explicit_head_dim : d_model / n_head; }
  int q_dim() const { return n_head * head_dim(); }      // Width of the attention output.
  int kv_dim() const { return n_kv_head * head_dim(); }  // Width of k and of v.
  // Output widths of the fused QKV matmul and of the MLP's first matmul (fc, or gate and up).
  int qkv_dim() const { return q_dim() + 2 * kv_dim(); }
  int mlp_in_dim() const { return arch().mlp == MlpKind::kSwiGlu ? 2 * d_ff : d_ff; }
  int embed_dim() const { return word_embed_proj_dim > 0 ? word_embed_proj_dim : d_model; }
  // The attention window of `layer` (0: unlimited).
  int WindowOfLayer(int layer) const {
    return sliding_window > 0 && layer >= window_from_layer ? sliding_window : 0;
  }
  Architecture arch() const;
  // Rows of the learned position table (GPT-2: max_seq_len; OPT: max_seq_len + 2).
  int position_rows() const { return max_seq_len + arch().position_offset; }
  // Parameters in the model (tied tensors counted once).
  int64_t NumParameters() const;
};

// GPT-2 small (124M parameters): vocabulary 50257, 1024 positions, 12 layers and heads, 768 wide.
ModelConfig Gpt2SmallConfig();

// Checks the invariants the kernels rely on (positive sizes, kv heads divide heads, even
// head_dim for RoPE) and that every field set is one the family's config.json can express;
// the message names the offending key.
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
