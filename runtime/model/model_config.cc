// See model_config.h.
#include "runtime/model/model_config.h"

#include <fstream>
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

// rope_scaling: null, {"rope_type" (or "type"): "linear", "factor"} or the Llama 3.1
// {"rope_type": "llama3", "factor", "low_freq_factor", "high_freq_factor",
// "original_max_position_embeddings"}; other types change the maths and are refused by name.
absl::StatusOr<RopeScaling> ParseRopeScaling(const Reader& r) {
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
  } else {
    return s.Error("rope_type",
                   absl::StrCat(ShownValue(type), " is not supported (linear or llama3)"));
  }
  if (!(scaling.factor > 0)) return s.Error("factor", "must be positive");
  return scaling;
}

absl::StatusOr<ModelConfig> ParseLlama(const Reader& r) {
  ModelConfig c;
  c.family = ModelFamily::kLlama;
  STRATA_ASSIGN_OR_RETURN(c.vocab_size, r.Int("vocab_size"));
  STRATA_ASSIGN_OR_RETURN(c.max_seq_len, r.IntOr("max_position_embeddings", 2048));
  STRATA_ASSIGN_OR_RETURN(c.n_layer, r.Int("num_hidden_layers"));
  STRATA_ASSIGN_OR_RETURN(c.n_head, r.Int("num_attention_heads"));
  STRATA_ASSIGN_OR_RETURN(c.n_kv_head, r.IntOr("num_key_value_heads", c.n_head));
  STRATA_ASSIGN_OR_RETURN(c.d_model, r.Int("hidden_size"));
  STRATA_ASSIGN_OR_RETURN(c.d_ff, r.Int("intermediate_size"));
  STRATA_ASSIGN_OR_RETURN(c.norm_eps, r.FloatOr("rms_norm_eps", 1e-6f));
  STRATA_ASSIGN_OR_RETURN(c.rope_theta, r.FloatOr("rope_theta", 10000.0f));
  STRATA_ASSIGN_OR_RETURN(c.tie_embeddings, r.BoolOr("tie_word_embeddings", false));
  STRATA_ASSIGN_OR_RETURN(std::string act, r.StringOr("hidden_act", "silu"));
  if (act != "silu") {
    return r.Error("hidden_act", absl::StrCat(ShownValue(act), " is not supported (only silu)"));
  }
  STRATA_ASSIGN_OR_RETURN(c.rope_scaling, ParseRopeScaling(r));
  STRATA_ASSIGN_OR_RETURN(bool attention_bias, r.BoolOr("attention_bias", false));
  if (attention_bias) return r.Error("attention_bias", "true is not supported");
  STRATA_ASSIGN_OR_RETURN(bool mlp_bias, r.BoolOr("mlp_bias", false));
  if (mlp_bias) return r.Error("mlp_bias", "true is not supported");
  if (r.Has("head_dim")) {
    STRATA_ASSIGN_OR_RETURN(int head_dim, r.Int("head_dim"));
    if (head_dim * c.n_head != c.d_model) {
      return r.Error("head_dim", "must equal hidden_size / num_attention_heads");
    }
  }
  return c;
}

}  // namespace

absl::string_view ModelFamilyName(ModelFamily family) {
  return family == ModelFamily::kGpt2 ? "gpt2" : "llama";
}

int64_t ModelConfig::NumParameters() const {
  const int64_t C = d_model, V = vocab_size, L = n_layer, F = d_ff;
  const int64_t kv = static_cast<int64_t>(n_kv_head) * head_dim();
  if (family == ModelFamily::kGpt2) {
    const int64_t block = 2 * C + C * 3 * C + 3 * C + C * C + C + 2 * C + C * F + F + F * C + C;
    return V * C + static_cast<int64_t>(max_seq_len) * C + L * block + 2 * C;
  }
  const int64_t block = C + C * C + 2 * kv * C + C * C + C + 3 * C * F;
  return V * C + L * block + C + (tie_embeddings ? 0 : V * C);
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
  if (c.vocab_size <= 0 || c.max_seq_len <= 0 || c.n_layer <= 0 || c.n_head <= 0 ||
      c.n_kv_head <= 0 || c.d_model <= 0 || c.d_ff <= 0) {
    return bad("model sizes must be positive");
  }
  if (c.d_model % c.n_head != 0) {
    return bad(absl::StrCat("hidden size ", c.d_model, " is not divisible by the ", c.n_head,
                            " attention heads"));
  }
  if (c.n_head % c.n_kv_head != 0) {
    return bad(absl::StrCat("num_attention_heads ", c.n_head,
                            " is not divisible by num_key_value_heads ", c.n_kv_head));
  }
  if (c.family == ModelFamily::kGpt2 && c.n_kv_head != c.n_head) {
    return bad("GPT-2 has no grouped-query attention");
  }
  if (c.family == ModelFamily::kLlama && c.head_dim() % 2 != 0) {
    return bad(absl::StrCat("head_dim ", c.head_dim(), " must be even for RoPE"));
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
  } else {
    return reader.Error("model_type",
                        absl::StrCat(ShownValue(model_type), " is not supported (gpt2 or llama)"));
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
  json["vocab_size"] = c.vocab_size;
  json["tie_word_embeddings"] = c.tie_embeddings;
  if (c.family == ModelFamily::kGpt2) {
    json["model_type"] = "gpt2";
    json["architectures"] = {"GPT2LMHeadModel"};
    json["n_positions"] = c.max_seq_len;
    json["n_ctx"] = c.max_seq_len;
    json["n_layer"] = c.n_layer;
    json["n_head"] = c.n_head;
    json["n_embd"] = c.d_model;
    json["n_inner"] = c.d_ff;
    json["layer_norm_epsilon"] = c.norm_eps;
    json["activation_function"] = "gelu_new";
  } else {
    json["model_type"] = "llama";
    json["architectures"] = {"LlamaForCausalLM"};
    json["max_position_embeddings"] = c.max_seq_len;
    json["num_hidden_layers"] = c.n_layer;
    json["num_attention_heads"] = c.n_head;
    json["num_key_value_heads"] = c.n_kv_head;
    json["hidden_size"] = c.d_model;
    json["intermediate_size"] = c.d_ff;
    json["rms_norm_eps"] = c.norm_eps;
    json["rope_theta"] = c.rope_theta;
    json["hidden_act"] = "silu";
    const RopeScaling& rs = c.rope_scaling;
    if (rs.kind == RopeScaling::Kind::kNone) {
      json["rope_scaling"] = nullptr;
    } else if (rs.kind == RopeScaling::Kind::kLinear) {
      json["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rs.factor}};
    } else {
      json["rope_scaling"] = {
          {"rope_type", "llama3"},
          {"factor", rs.factor},
          {"low_freq_factor", rs.low_freq_factor},
          {"high_freq_factor", rs.high_freq_factor},
          {"original_max_position_embeddings", rs.original_max_position_embeddings}};
    }
  }
  return json.dump(2) + "\n";
}

}  // namespace strata
