// See model_config.h.
#include "runtime/model/model_config.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/base/shown_value.h"
#include "runtime/base/status_macros.h"

namespace strata {
namespace {

using Json = nlohmann::json;

class Reader {
 public:
  Reader(const Json& json, absl::string_view source) : json_(json), source_(source) {}

  // The object under `key`, its keys named "key.inner" in errors.
  absl::StatusOr<Reader> Object(const char* key) const {
    if (!json_[key].is_object()) return Error(key, "must be an object or null");
    return Reader(json_[key], absl::StrCat(source_, ": ", key));
  }

  absl::Status Error(absl::string_view key, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": \"", key, "\" ", what));
  }

  bool Has(const char* key) const { return json_.contains(key) && !json_[key].is_null(); }
  bool Present(const char* key) const { return json_.contains(key); }
  const Json& Get(const char* key) const { return json_[key]; }

  absl::StatusOr<int> Int(const char* key) const {
    if (!Has(key)) return Error(key, "is missing");
    const Json& value = json_[key];
    if (!value.is_number_integer()) return Error(key, "must be an integer");
    const int64_t v = value.get<int64_t>();
    if (v <= 0 || v > (int64_t{1} << 31) - 1) {
      return Error(key, absl::StrCat("must be a positive 32-bit integer, got ", v));
    }
    return static_cast<int>(v);
  }

  absl::StatusOr<int> IntOr(const char* key, int fallback) const {
    return Has(key) ? Int(key) : absl::StatusOr<int>(fallback);
  }

  // Like IntOr, and 0 allowed.
  absl::StatusOr<int> CountOr(const char* key, int fallback) const {
    if (Has(key) && json_[key].is_number_integer() && json_[key].get<int64_t>() == 0) return 0;
    return IntOr(key, fallback);
  }

  // A key that changes the maths in a way the runtime does not implement: refused unless it is
  // absent, null or `benign`.
  absl::Status RefuseUnless(const char* key, const Json& benign) const {
    if (!Has(key) || json_[key] == benign) return absl::OkStatus();
    return Error(key, absl::StrCat("= ", ShownValue(json_[key].dump()), " is not supported"));
  }

  absl::StatusOr<float> FloatOr(const char* key, float fallback) const {
    if (!Has(key)) return fallback;
    if (!json_[key].is_number()) return Error(key, "must be a number");
    const double v = json_[key].get<double>();
    if (!(v > 0)) return Error(key, absl::StrCat("must be positive, got ", v));
    return static_cast<float>(v);
  }

  absl::StatusOr<bool> BoolOr(const char* key, bool fallback) const {
    if (!Has(key)) return fallback;
    if (!json_[key].is_boolean()) return Error(key, "must be true or false");
    return json_[key].get<bool>();
  }

  absl::StatusOr<std::string> StringOr(const char* key, const std::string& fallback) const {
    if (!Has(key)) return fallback;
    if (!json_[key].is_string()) return Error(key, "must be a string");
    return json_[key].get<std::string>();
  }

 private:
  const Json& json_;
  std::string source_;
};

absl::StatusOr<ModelConfig> ParseGpt2(const Reader& r) {
  ModelConfig c;
  c.family = ModelFamily::kGpt2;
  STRATA_ASSIGN_OR_RETURN(c.vocab_size, r.Int("vocab_size"));
  STRATA_ASSIGN_OR_RETURN(c.max_seq_len, r.Int("n_positions"));
  STRATA_ASSIGN_OR_RETURN(c.n_layer, r.Int("n_layer"));
  STRATA_ASSIGN_OR_RETURN(c.n_head, r.Int("n_head"));
  STRATA_ASSIGN_OR_RETURN(c.d_model, r.Int("n_embd"));
  STRATA_ASSIGN_OR_RETURN(c.d_ff, r.IntOr("n_inner", 4 * c.d_model));
  STRATA_ASSIGN_OR_RETURN(c.norm_eps, r.FloatOr("layer_norm_epsilon", 1e-5f));
  STRATA_ASSIGN_OR_RETURN(c.tie_embeddings, r.BoolOr("tie_word_embeddings", true));
  STRATA_ASSIGN_OR_RETURN(std::string act, r.StringOr("activation_function", "gelu_new"));
  if (act != "gelu_new" && act != "gelu_pytorch_tanh") {
    return r.Error(
        "activation_function",
        absl::StrCat(ShownValue(act), " is not supported (only gelu_new, the tanh GELU)"));
  }
  if (!c.tie_embeddings) {
    return r.Error("tie_word_embeddings", "false is not supported for GPT-2");
  }
  STRATA_ASSIGN_OR_RETURN(bool scale_by_idx, r.BoolOr("scale_attn_by_inverse_layer_idx", false));
  if (scale_by_idx) return r.Error("scale_attn_by_inverse_layer_idx", "true is not supported");
  c.n_kv_head = c.n_head;
  return c;
}

// rope_scaling: null, {"rope_type" (or "type"): "linear", "factor"}, the Llama 3.1
// {"rope_type": "llama3", "factor", "low_freq_factor", "high_freq_factor",
// "original_max_position_embeddings"}, or {"rope_type": "yarn", "factor",
// "original_max_position_embeddings", "beta_fast", "beta_slow", "mscale", "mscale_all_dim",
// "attention_factor", "truncate"}; other types change the maths and are refused by name.
absl::StatusOr<RopeScaling> ParseRopeScaling(const Reader& r, int max_position_embeddings) {
  RopeScaling scaling;
  if (!r.Has("rope_scaling")) return scaling;
  STRATA_ASSIGN_OR_RETURN(Reader s, r.Object("rope_scaling"));
  STRATA_ASSIGN_OR_RETURN(std::string type, s.StringOr("type", ""));
  STRATA_ASSIGN_OR_RETURN(type, s.StringOr("rope_type", type));
  STRATA_ASSIGN_OR_RETURN(scaling.factor, s.FloatOr("factor", 0.0f));
  if (type == "linear") {
    scaling.kind = RopeScaling::Kind::kLinear;
  } else if (type == "llama3") {
    scaling.kind = RopeScaling::Kind::kLlama3;
    STRATA_ASSIGN_OR_RETURN(scaling.low_freq_factor, s.FloatOr("low_freq_factor", 1.0f));
    STRATA_ASSIGN_OR_RETURN(scaling.high_freq_factor, s.FloatOr("high_freq_factor", 4.0f));
    STRATA_ASSIGN_OR_RETURN(scaling.original_max_position_embeddings,
                            s.Int("original_max_position_embeddings"));
    if (!(scaling.high_freq_factor > scaling.low_freq_factor)) {
      return s.Error("high_freq_factor", "must be greater than low_freq_factor");
    }
  } else if (type == "yarn") {
    scaling.kind = RopeScaling::Kind::kYarn;
    STRATA_ASSIGN_OR_RETURN(scaling.original_max_position_embeddings,
                            s.IntOr("original_max_position_embeddings", max_position_embeddings));
    // transformers versions disagree on which factor applies when both are given: older ones
    // use `factor`, newer ones max_position_embeddings / original_max_position_embeddings.
    // Only a config on which they agree is the same model everywhere.
    if (s.Has("original_max_position_embeddings") &&
        static_cast<float>(static_cast<double>(max_position_embeddings) /
                           scaling.original_max_position_embeddings) != scaling.factor) {
      return s.Error("factor",
                     "differs from max_position_embeddings / original_max_position_embeddings; "
                     "transformers versions disagree on which applies, so it is refused");
    }
    STRATA_ASSIGN_OR_RETURN(scaling.beta_fast, s.FloatOr("beta_fast", 32.0f));
    STRATA_ASSIGN_OR_RETURN(scaling.beta_slow, s.FloatOr("beta_slow", 1.0f));
    STRATA_ASSIGN_OR_RETURN(scaling.mscale, s.FloatOr("mscale", 0.0f));
    STRATA_ASSIGN_OR_RETURN(scaling.mscale_all_dim, s.FloatOr("mscale_all_dim", 0.0f));
    STRATA_ASSIGN_OR_RETURN(scaling.attention_factor, s.FloatOr("attention_factor", 0.0f));
    STRATA_ASSIGN_OR_RETURN(scaling.truncate, s.BoolOr("truncate", true));
  } else {
    return s.Error("rope_type",
                   absl::StrCat(ShownValue(type), " is not supported (linear, llama3 or yarn)"));
  }
  if (!(scaling.factor > 0)) return s.Error("factor", "must be positive");
  return scaling;
}

// The keys LLaMA-style families share (llama, mistral, qwen2, qwen3).
absl::StatusOr<ModelConfig> ParseRopeFamily(const Reader& r, ModelFamily family, bool tie_default) {
  ModelConfig c;
  c.family = family;
  STRATA_ASSIGN_OR_RETURN(c.vocab_size, r.Int("vocab_size"));
  STRATA_ASSIGN_OR_RETURN(c.max_seq_len, r.IntOr("max_position_embeddings", 2048));
  STRATA_ASSIGN_OR_RETURN(c.n_layer, r.Int("num_hidden_layers"));
  STRATA_ASSIGN_OR_RETURN(c.n_head, r.Int("num_attention_heads"));
  STRATA_ASSIGN_OR_RETURN(c.n_kv_head, r.IntOr("num_key_value_heads", c.n_head));
  STRATA_ASSIGN_OR_RETURN(c.d_model, r.Int("hidden_size"));
  STRATA_ASSIGN_OR_RETURN(c.d_ff, r.Int("intermediate_size"));
  STRATA_ASSIGN_OR_RETURN(c.norm_eps, r.FloatOr("rms_norm_eps", 1e-6f));
  STRATA_ASSIGN_OR_RETURN(c.rope_theta, r.FloatOr("rope_theta", 10000.0f));
  STRATA_ASSIGN_OR_RETURN(c.tie_embeddings, r.BoolOr("tie_word_embeddings", tie_default));
  STRATA_ASSIGN_OR_RETURN(std::string act, r.StringOr("hidden_act", "silu"));
  if (act != "silu") {
    return r.Error("hidden_act", absl::StrCat(ShownValue(act), " is not supported (only silu)"));
  }
  STRATA_ASSIGN_OR_RETURN(c.rope_scaling, ParseRopeScaling(r, c.max_seq_len));
  STRATA_RETURN_IF_ERROR(r.RefuseUnless("partial_rotary_factor", 1.0));
  STRATA_RETURN_IF_ERROR(r.RefuseUnless("pretraining_tp", 1));
  if (r.Has("head_dim")) {
    STRATA_ASSIGN_OR_RETURN(c.explicit_head_dim, r.Int("head_dim"));
  }
  // A head_dim equal to the default is the same model; keep one spelling.
  if (int64_t{c.explicit_head_dim} * c.n_head == c.d_model) c.explicit_head_dim = 0;
  return c;
}

// qwen2 / qwen3: use_sliding_window with sliding_window and max_window_layers (layers at or
// above max_window_layers use the window).
absl::Status ParseQwenWindow(const Reader& r, ModelConfig& c) {
  STRATA_ASSIGN_OR_RETURN(bool sliding, r.BoolOr("use_sliding_window", false));
  if (!sliding) return absl::OkStatus();
  // sliding_window defaults to 4096; null turns the window off.
  c.sliding_window = r.Present("sliding_window") ? 0 : 4096;
  if (r.Has("sliding_window")) {
    STRATA_ASSIGN_OR_RETURN(c.sliding_window, r.Int("sliding_window"));
  }
  STRATA_ASSIGN_OR_RETURN(c.window_from_layer, r.CountOr("max_window_layers", 28));
  return absl::OkStatus();
}

// layer_types (newer transformers write it): accepted when it says what the window keys say,
// layer by layer; anything else would be a model the window keys do not describe.
absl::Status CheckLayerTypes(const Reader& r, const ModelConfig& c) {
  if (!r.Has("layer_types")) return absl::OkStatus();
  const Json& types = r.Get("layer_types");
  if (!types.is_array() || static_cast<int>(types.size()) != c.n_layer) {
    return r.Error("layer_types", "must list one type per layer");
  }
  for (int l = 0; l < c.n_layer; ++l) {
    const char* expected = c.WindowOfLayer(l) > 0 ? "sliding_attention" : "full_attention";
    if (types[l] != expected) {
      return r.Error("layer_types",
                     absl::StrCat("[", l, "] = ", ShownValue(types[l].dump()),
                                  " disagrees with the window keys (", expected, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ParseLlama(const Reader& r) {
  STRATA_ASSIGN_OR_RETURN(ModelConfig c, ParseRopeFamily(r, ModelFamily::kLlama, false));
  STRATA_ASSIGN_OR_RETURN(c.attention_bias, r.BoolOr("attention_bias", false));
  STRATA_ASSIGN_OR_RETURN(c.mlp_bias, r.BoolOr("mlp_bias", false));
  STRATA_RETURN_IF_ERROR(CheckLayerTypes(r, c));
  return c;
}

absl::StatusOr<ModelConfig> ParseMistral(const Reader& r) {
  STRATA_ASSIGN_OR_RETURN(ModelConfig c, ParseRopeFamily(r, ModelFamily::kMistral, false));
  STRATA_RETURN_IF_ERROR(r.RefuseUnless("attention_bias", false));
  // MistralConfig's sliding_window defaults to 4096; null turns it off. (It has no
  // layer_types: every layer uses the window.)
  STRATA_RETURN_IF_ERROR(r.RefuseUnless("layer_types", nullptr));
  c.sliding_window = r.Present("sliding_window") ? 0 : 4096;
  if (r.Has("sliding_window")) {
    STRATA_ASSIGN_OR_RETURN(c.sliding_window, r.Int("sliding_window"));
  }
  return c;
}

absl::StatusOr<ModelConfig> ParseQwen2(const Reader& r) {
  STRATA_ASSIGN_OR_RETURN(ModelConfig c, ParseRopeFamily(r, ModelFamily::kQwen2, false));
  STRATA_RETURN_IF_ERROR(r.RefuseUnless("use_mrope", false));  // Qwen2-VL's multimodal RoPE.
  STRATA_RETURN_IF_ERROR(ParseQwenWindow(r, c));
  STRATA_RETURN_IF_ERROR(CheckLayerTypes(r, c));
  return c;
}

absl::StatusOr<ModelConfig> ParseQwen3(const Reader& r) {
  STRATA_ASSIGN_OR_RETURN(ModelConfig c, ParseRopeFamily(r, ModelFamily::kQwen3, false));
  // Qwen3Config's head_dim defaults to 128, not hidden_size / heads.
  if (!r.Has("head_dim") && 128 * c.n_head != c.d_model) c.explicit_head_dim = 128;
  STRATA_ASSIGN_OR_RETURN(c.attention_bias, r.BoolOr("attention_bias", false));
  STRATA_RETURN_IF_ERROR(ParseQwenWindow(r, c));
  STRATA_RETURN_IF_ERROR(CheckLayerTypes(r, c));
  return c;
}

// OPT: dropout, attention_dropout and layerdrop are training-time regularizers Strata does not
// apply (documented in docs/runtime.md); everything that changes the forward pass is read or
// refused.
absl::StatusOr<ModelConfig> ParseOpt(const Reader& r) {
  ModelConfig c;
  c.family = ModelFamily::kOpt;
  STRATA_ASSIGN_OR_RETURN(c.vocab_size, r.Int("vocab_size"));
  STRATA_ASSIGN_OR_RETURN(c.max_seq_len, r.Int("max_position_embeddings"));
  STRATA_ASSIGN_OR_RETURN(c.n_layer, r.Int("num_hidden_layers"));
  STRATA_ASSIGN_OR_RETURN(c.n_head, r.Int("num_attention_heads"));
  c.n_kv_head = c.n_head;
  STRATA_ASSIGN_OR_RETURN(c.d_model, r.Int("hidden_size"));
  STRATA_ASSIGN_OR_RETURN(c.d_ff, r.Int("ffn_dim"));
  STRATA_ASSIGN_OR_RETURN(c.word_embed_proj_dim, r.IntOr("word_embed_proj_dim", c.d_model));
  if (c.word_embed_proj_dim == c.d_model) c.word_embed_proj_dim = 0;
  STRATA_ASSIGN_OR_RETURN(c.layer_norm_before, r.BoolOr("do_layer_norm_before", true));
  STRATA_ASSIGN_OR_RETURN(c.remove_final_norm, r.BoolOr("_remove_final_layer_norm", false));
  STRATA_ASSIGN_OR_RETURN(c.tie_embeddings, r.BoolOr("tie_word_embeddings", true));
  if (!c.tie_embeddings) return r.Error("tie_word_embeddings", "false is not supported for OPT");
  STRATA_ASSIGN_OR_RETURN(std::string act, r.StringOr("activation_function", "relu"));
  if (act != "relu") {
    return r.Error("activation_function",
                   absl::StrCat(ShownValue(act), " is not supported for OPT (only relu)"));
  }
  STRATA_RETURN_IF_ERROR(r.RefuseUnless("enable_bias", true));
  STRATA_RETURN_IF_ERROR(r.RefuseUnless("layer_norm_elementwise_affine", true));
  c.norm_eps = 1e-5f;  // OPT's LayerNorms use PyTorch's default.
  return c;
}

}  // namespace

absl::string_view ModelFamilyName(ModelFamily family) {
  switch (family) {
    case ModelFamily::kGpt2:
      return "gpt2";
    case ModelFamily::kLlama:
      return "llama";
    case ModelFamily::kOpt:
      return "opt";
    case ModelFamily::kQwen2:
      return "qwen2";
    case ModelFamily::kQwen3:
      return "qwen3";
    case ModelFamily::kMistral:
      return "mistral";
  }
  return "?";
}

const ModelFamily* AllModelFamilies(int* count) {
  static constexpr ModelFamily kAll[] = {ModelFamily::kGpt2,  ModelFamily::kLlama,
                                         ModelFamily::kOpt,   ModelFamily::kQwen2,
                                         ModelFamily::kQwen3, ModelFamily::kMistral};
  *count = static_cast<int>(sizeof(kAll) / sizeof(kAll[0]));
  return kAll;
}

Architecture ModelConfig::arch() const {
  Architecture a;
  switch (family) {
    case ModelFamily::kGpt2:
    case ModelFamily::kOpt:
      a.layer_norm = true;
      a.mlp = family == ModelFamily::kGpt2 ? MlpKind::kGeluTanh : MlpKind::kRelu;
      a.learned_positions = true;
      a.position_offset = family == ModelFamily::kOpt ? 2 : 0;
      a.qkv_bias = a.o_bias = a.mlp_bias = true;
      a.pre_norm = layer_norm_before;
      a.final_norm = layer_norm_before && !remove_final_norm;
      a.projections = word_embed_proj_dim > 0 && word_embed_proj_dim != d_model;
      break;
    case ModelFamily::kLlama:
    case ModelFamily::kMistral:
    case ModelFamily::kQwen2:
    case ModelFamily::kQwen3:
      a.qkv_bias = attention_bias || family == ModelFamily::kQwen2;
      a.o_bias = attention_bias;
      a.mlp_bias = mlp_bias;
      a.qk_norm = family == ModelFamily::kQwen3;
      break;
  }
  return a;
}

int64_t ModelConfig::NumParameters() const {
  const Architecture a = arch();
  const int64_t C = d_model, V = vocab_size, L = n_layer, F = d_ff, E = embed_dim();
  const int64_t qkv = qkv_dim();
  const int64_t norm = a.layer_norm ? 2 * C : C;
  int64_t block = 2 * norm + qkv * C + static_cast<int64_t>(q_dim()) * C;
  if (a.qkv_bias) block += qkv;
  if (a.o_bias) block += C;
  if (a.qk_norm) block += 2 * head_dim();
  block += (a.mlp == MlpKind::kSwiGlu ? 3 : 2) * C * F;
  if (a.mlp_bias) block += (a.mlp == MlpKind::kSwiGlu ? 2 : 1) * F + C;
  int64_t total = V * E + L * block + (a.final_norm ? norm : 0);
  if (a.learned_positions) total += static_cast<int64_t>(position_rows()) * C;
  if (a.projections) total += 2 * E * C;
  if (!tie_embeddings) total += V * E;
  return total;
}

ModelConfig Gpt2SmallConfig() {
  ModelConfig c;
  c.family = ModelFamily::kGpt2;
  c.vocab_size = 50257;
  c.max_seq_len = 1024;
  c.n_layer = 12;
  c.n_head = c.n_kv_head = 12;
  c.d_model = 768;
  c.d_ff = 3072;
  return c;
}

absl::Status ValidateModelConfig(const ModelConfig& c) {
  auto bad = [](absl::string_view what) { return absl::InvalidArgumentError(what); };
  const absl::string_view family = ModelFamilyName(c.family);
  if (c.vocab_size <= 0 || c.max_seq_len <= 0 || c.n_layer <= 0 || c.n_head <= 0 ||
      c.n_kv_head <= 0 || c.d_model <= 0 || c.d_ff <= 0 || c.explicit_head_dim < 0 ||
      c.word_embed_proj_dim < 0 || c.sliding_window < 0 || c.window_from_layer < 0) {
    return bad("model sizes must be positive");
  }
  // Every width a kernel indexes with an int must fit one (and stay far from overflow when
  // multiplied by a row count in int64): at most 2^24 for the fused QKV and MLP widths.
  constexpr int64_t kMaxWidth = int64_t{1} << 24;
  const int64_t head_dim =
      c.explicit_head_dim > 0 ? c.explicit_head_dim : c.d_model / std::max(c.n_head, 1);
  const int64_t qkv = (int64_t{c.n_head} + 2 * int64_t{c.n_kv_head}) * head_dim;
  if (qkv > kMaxWidth || 2 * int64_t{c.d_ff} > kMaxWidth || c.d_model > kMaxWidth ||
      c.word_embed_proj_dim > kMaxWidth) {
    return bad(absl::StrCat("model widths exceed ", kMaxWidth,
                            " (heads x head_dim, intermediate size or hidden size)"));
  }
  if (c.explicit_head_dim == 0 && c.d_model % c.n_head != 0) {
    return bad(absl::StrCat("hidden size ", c.d_model, " is not divisible by the ", c.n_head,
                            " attention heads"));
  }
  if (c.n_head % c.n_kv_head != 0) {
    return bad(absl::StrCat("num_attention_heads ", c.n_head,
                            " is not divisible by num_key_value_heads ", c.n_kv_head));
  }
  const Architecture a = c.arch();
  const bool gpt2 = c.family == ModelFamily::kGpt2, opt = c.family == ModelFamily::kOpt;
  const bool qwen = c.family == ModelFamily::kQwen2 || c.family == ModelFamily::kQwen3;
  if (a.learned_positions) {
    if (c.n_kv_head != c.n_head)
      return bad(absl::StrCat(family, " has no grouped-query attention"));
    if (c.explicit_head_dim != 0) return bad(absl::StrCat(family, " has no head_dim key"));
    if (c.sliding_window != 0) return bad(absl::StrCat(family, " has no sliding window"));
  } else if (c.head_dim() % 2 != 0) {
    return bad(absl::StrCat("head_dim ", c.head_dim(), " must be even for RoPE"));
  }
  if ((gpt2 || opt) && !c.tie_embeddings) {
    return bad(absl::StrCat("tie_word_embeddings false is not supported for ", family));
  }
  if (!opt && (!c.layer_norm_before || c.remove_final_norm || c.word_embed_proj_dim != 0)) {
    return bad(absl::StrCat(family,
                            " has no do_layer_norm_before, _remove_final_layer_norm or "
                            "word_embed_proj_dim keys"));
  }
  if (c.attention_bias && c.family != ModelFamily::kLlama && c.family != ModelFamily::kQwen3) {
    return bad(absl::StrCat("attention_bias is not a key of ", family));
  }
  if (c.mlp_bias && c.family != ModelFamily::kLlama) {
    return bad(absl::StrCat("mlp_bias is not a key of ", family));
  }
  if (c.window_from_layer != 0 && !qwen) {
    return bad(absl::StrCat("max_window_layers is not a key of ", family));
  }
  if (c.rope_scaling.kind != RopeScaling::Kind::kNone && a.learned_positions) {
    return bad(absl::StrCat(family, " has no rope_scaling"));
  }
  const RopeScaling& rs = c.rope_scaling;
  if (rs.kind == RopeScaling::Kind::kYarn && rs.original_max_position_embeddings != c.max_seq_len &&
      static_cast<double>(c.max_seq_len) / rs.original_max_position_embeddings !=
          static_cast<double>(rs.factor)) {
    return bad(
        "rope_scaling.factor differs from max_position_embeddings / "
        "original_max_position_embeddings");
  }
  if (!(c.norm_eps > 0) || !(c.rope_theta > 0)) return bad("norm_eps and rope_theta must be > 0");
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ParseHfConfig(absl::string_view json_text, absl::string_view source) {
  Json json = Json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded())
    return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON"));
  if (!json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": must be a JSON object"));
  }
  Reader reader(json, source);
  STRATA_ASSIGN_OR_RETURN(std::string model_type, reader.StringOr("model_type", ""));
  absl::StatusOr<ModelConfig> config;
  if (model_type == "gpt2") {
    config = ParseGpt2(reader);
  } else if (model_type == "llama") {
    config = ParseLlama(reader);
  } else if (model_type == "opt") {
    config = ParseOpt(reader);
  } else if (model_type == "mistral") {
    config = ParseMistral(reader);
  } else if (model_type == "qwen2") {
    config = ParseQwen2(reader);
  } else if (model_type == "qwen3") {
    config = ParseQwen3(reader);
  } else {
    return reader.Error(
        "model_type",
        absl::StrCat(ShownValue(model_type),
                     " is not supported (gpt2, opt, llama, mistral, qwen2 or qwen3)"));
  }
  if (!config.ok()) return config.status();
  if (absl::Status status = ValidateModelConfig(*config); !status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", status.message()));
  }
  return config;
}

absl::StatusOr<ModelConfig> ReadHfConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream text;
  text << in.rdbuf();
  return ParseHfConfig(text.str(), path);
}

std::string ToHfConfigJson(const ModelConfig& c) {
  Json json;
  json["model_type"] = std::string(ModelFamilyName(c.family));
  json["vocab_size"] = c.vocab_size;
  json["tie_word_embeddings"] = c.tie_embeddings;
  if (c.family == ModelFamily::kGpt2) {
    json["architectures"] = {"GPT2LMHeadModel"};
    json["n_positions"] = c.max_seq_len;
    json["n_ctx"] = c.max_seq_len;
    json["n_layer"] = c.n_layer;
    json["n_head"] = c.n_head;
    json["n_embd"] = c.d_model;
    json["n_inner"] = c.d_ff;
    json["layer_norm_epsilon"] = c.norm_eps;
    json["activation_function"] = "gelu_new";
    return json.dump(2) + "\n";
  }
  json["max_position_embeddings"] = c.max_seq_len;
  json["num_hidden_layers"] = c.n_layer;
  json["num_attention_heads"] = c.n_head;
  json["hidden_size"] = c.d_model;
  if (c.family == ModelFamily::kOpt) {
    json["architectures"] = {"OPTForCausalLM"};
    json["ffn_dim"] = c.d_ff;
    json["word_embed_proj_dim"] = c.embed_dim();
    json["do_layer_norm_before"] = c.layer_norm_before;
    json["_remove_final_layer_norm"] = c.remove_final_norm;
    json["activation_function"] = "relu";
    json["enable_bias"] = true;
    json["layer_norm_elementwise_affine"] = true;
    json["dropout"] = 0.0;
    json["attention_dropout"] = 0.0;
    json["layerdrop"] = 0.0;
    return json.dump(2) + "\n";
  }
  static const std::map<ModelFamily, const char*> kArchitectures = {
      {ModelFamily::kLlama, "LlamaForCausalLM"},
      {ModelFamily::kMistral, "MistralForCausalLM"},
      {ModelFamily::kQwen2, "Qwen2ForCausalLM"},
      {ModelFamily::kQwen3, "Qwen3ForCausalLM"}};
  json["architectures"] = {kArchitectures.at(c.family)};
  json["num_key_value_heads"] = c.n_kv_head;
  json["head_dim"] = c.head_dim();
  json["intermediate_size"] = c.d_ff;
  json["rms_norm_eps"] = c.norm_eps;
  json["rope_theta"] = c.rope_theta;
  json["hidden_act"] = "silu";
  if (c.family == ModelFamily::kLlama) {
    json["attention_bias"] = c.attention_bias;
    json["mlp_bias"] = c.mlp_bias;
  } else if (c.family == ModelFamily::kQwen3) {
    json["attention_bias"] = c.attention_bias;
  }
  if (c.family == ModelFamily::kMistral) {
    json["sliding_window"] = c.sliding_window > 0 ? Json(c.sliding_window) : Json(nullptr);
  } else if (c.family != ModelFamily::kLlama) {
    json["use_sliding_window"] = c.sliding_window > 0;
    json["sliding_window"] = c.sliding_window > 0 ? Json(c.sliding_window) : Json(nullptr);
    json["max_window_layers"] = c.sliding_window > 0 ? c.window_from_layer : c.n_layer;
  }
  const RopeScaling& rs = c.rope_scaling;
  if (rs.kind == RopeScaling::Kind::kNone) {
    json["rope_scaling"] = nullptr;
  } else if (rs.kind == RopeScaling::Kind::kLinear) {
    json["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rs.factor}};
  } else if (rs.kind == RopeScaling::Kind::kYarn) {
    Json yarn = {{"rope_type", "yarn"},
                 {"factor", rs.factor},
                 {"beta_fast", rs.beta_fast},
                 {"beta_slow", rs.beta_slow},
                 {"truncate", rs.truncate}};
    if (rs.mscale > 0) yarn["mscale"] = rs.mscale;
    if (rs.mscale_all_dim > 0) yarn["mscale_all_dim"] = rs.mscale_all_dim;
    if (rs.attention_factor > 0) yarn["attention_factor"] = rs.attention_factor;
    // original_max_position_embeddings defaults to max_position_embeddings: written only when
    // the two agree with `factor` (see ParseRopeScaling).
    if (static_cast<double>(c.max_seq_len) / rs.original_max_position_embeddings ==
        static_cast<double>(rs.factor)) {
      yarn["original_max_position_embeddings"] = rs.original_max_position_embeddings;
    }
    json["rope_scaling"] = yarn;
  } else {
    json["rope_scaling"] = {
        {"rope_type", "llama3"},
        {"factor", rs.factor},
        {"low_freq_factor", rs.low_freq_factor},
        {"high_freq_factor", rs.high_freq_factor},
        {"original_max_position_embeddings", rs.original_max_position_embeddings}};
  }
  return json.dump(2) + "\n";
}

}  // namespace strata
