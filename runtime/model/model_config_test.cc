#include "runtime/model/model_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/testing/tiny_models.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

constexpr char kGpt2[] = R"({
  "model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "n_ctx": 1024,
  "n_embd": 768, "n_layer": 12, "n_head": 12, "n_inner": null,
  "activation_function": "gelu_new", "layer_norm_epsilon": 1e-05})";

constexpr char kLlama[] = R"({
  "model_type": "llama", "vocab_size": 128256, "hidden_size": 2048,
  "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
  "num_key_value_heads": 8, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05,
  "rope_theta": 500000.0, "hidden_act": "silu", "tie_word_embeddings": true,
  "rope_scaling": null})";

TEST(ModelConfigTest, ParsesGpt2SmallAndCountsItsParameters) {
  absl::StatusOr<ModelConfig> c = ParseHfConfig(kGpt2, "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->family, ModelFamily::kGpt2);
  EXPECT_EQ(c->d_ff, 3072);
  EXPECT_EQ(c->n_kv_head, 12);
  EXPECT_TRUE(c->tie_embeddings);
  EXPECT_EQ(c->NumParameters(), 124439808);  // GPT-2 small as Hugging Face counts it.
}

TEST(ModelConfigTest, ParsesLlamaWithGroupedQueryAttention) {
  absl::StatusOr<ModelConfig> c = ParseHfConfig(kLlama, "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->family, ModelFamily::kLlama);
  EXPECT_EQ(c->n_kv_head, 8);
  EXPECT_EQ(c->head_dim(), 64);
  EXPECT_FLOAT_EQ(c->rope_theta, 500000.0f);
  EXPECT_EQ(c->NumParameters(), 1235814400);  // Llama-3.2-1B.
}

TEST(ModelConfigTest, RoundTripsThroughJson) {
  for (const char* text : {kGpt2, kLlama}) {
    ModelConfig c = *ParseHfConfig(text, "a");
    ModelConfig again = *ParseHfConfig(ToHfConfigJson(c), "b");
    EXPECT_EQ(again.NumParameters(), c.NumParameters());
    EXPECT_EQ(again.norm_eps, c.norm_eps);
    EXPECT_EQ(again.rope_theta, c.rope_theta);
    EXPECT_EQ(again.tie_embeddings, c.tie_embeddings);
  }
}

TEST(ModelConfigTest, RejectionsNameTheKey) {
  EXPECT_THAT(ParseHfConfig("{", "cfg.json").status().message(), HasSubstr("cfg.json"));
  EXPECT_THAT(ParseHfConfig(R"({"model_type": "bert"})", "c").status().message(),
              HasSubstr("\"model_type\""));
  EXPECT_THAT(ParseHfConfig(R"({"model_type": "gpt2", "vocab_size": 10})", "c").status().message(),
              HasSubstr("\"n_positions\" is missing"));
  std::string bad = kLlama;
  bad.replace(bad.find("\"silu\""), 6, "\"gelu\"");
  EXPECT_THAT(ParseHfConfig(bad, "c").status().message(), HasSubstr("\"hidden_act\""));
  bad = kLlama;
  bad.replace(bad.find("\"rope_scaling\": null"), 20, "\"rope_scaling\": {\"type\": \"x\"}");
  EXPECT_THAT(ParseHfConfig(bad, "c").status().message(), HasSubstr("rope_scaling"));
  bad = kLlama;
  bad.replace(bad.find("\"num_key_value_heads\": 8"), 24, "\"num_key_value_heads\": 5");
  EXPECT_THAT(ParseHfConfig(bad, "c").status().message(), HasSubstr("not divisible"));
  bad = kGpt2;
  bad.replace(bad.find("\"n_layer\": 12"), 13, "\"n_layer\": -1");
  EXPECT_THAT(ParseHfConfig(bad, "c").status().message(), HasSubstr("\"n_layer\""));
}

// Llama-3.2-1B's config.json as the hub ships it (sizes unchanged): every benign key accepted,
// the llama3 rope_scaling parsed, and the published parameter count.
constexpr char kLlama32_1B[] = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 128000,
  "eos_token_id": 128001,
  "head_dim": 64,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 8192,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 16,
  "num_key_value_heads": 8,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {
    "factor": 32.0,
    "high_freq_factor": 4.0,
    "low_freq_factor": 1.0,
    "original_max_position_embeddings": 8192,
    "rope_type": "llama3"
  },
  "rope_theta": 500000.0,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0",
  "use_cache": true,
  "vocab_size": 128256
})";

TEST(ModelConfigTest, ParsesLlama32WithItsRopeScaling) {
  absl::StatusOr<ModelConfig> c = ParseHfConfig(kLlama32_1B, "Llama-3.2-1B/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->NumParameters(), 1235814400);
  EXPECT_EQ(c->rope_scaling.kind, RopeScaling::Kind::kLlama3);
  EXPECT_EQ(c->rope_scaling.factor, 32.0f);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 8192);
  // Saved and read back, the scaling is the same.
  absl::StatusOr<ModelConfig> again = ParseHfConfig(ToHfConfigJson(*c), "saved");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->rope_scaling.kind, RopeScaling::Kind::kLlama3);
  EXPECT_EQ(again->rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(again->rope_scaling.original_max_position_embeddings, 8192);
  // Types that change the maths and are not implemented are refused by name.
  std::string dynamic = kLlama32_1B;
  dynamic.replace(dynamic.find("\"llama3\""), 8, "\"dynamic\"");
  EXPECT_THAT(ParseHfConfig(dynamic, "c").status().message(),
              HasSubstr("rope_scaling: \"rope_type\" \"dynamic\" is not supported"));
  // YaRN whose factor disagrees with max_position_embeddings / original (transformers versions
  // apply different ones) is refused; 131072 / 8192 = 16, not 32.
  std::string yarn = kLlama32_1B;
  yarn.replace(yarn.find("\"llama3\""), 8, "\"yarn\"");
  EXPECT_THAT(ParseHfConfig(yarn, "c").status().message(),
              HasSubstr("\"factor\" differs from max_position_embeddings"));
  yarn.replace(yarn.find("\"factor\": 32.0"), 14, "\"factor\": 16.0");
  absl::StatusOr<ModelConfig> y = ParseHfConfig(yarn, "c");
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->rope_scaling.kind, RopeScaling::Kind::kYarn);
  absl::StatusOr<ModelConfig> y2 = ParseHfConfig(ToHfConfigJson(*y), "saved");
  ASSERT_TRUE(y2.ok()) << y2.status();
  EXPECT_EQ(y2->rope_scaling.factor, 16.0f);
  EXPECT_EQ(y2->rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(y2->rope_scaling.beta_fast, 32.0f);
}

// Each family's config.json as Strata writes it reads back to the same model, for the variants
// the runtime implements.
TEST(ModelConfigTest, EveryFamilyRoundTripsThroughItsConfigJson) {
  for (ModelFamily family : testing_models::AllFamilies()) {
    const ModelConfig c = testing_models::Tiny(family, 3);
    ASSERT_TRUE(ValidateModelConfig(c).ok()) << ModelFamilyName(family);
    absl::StatusOr<ModelConfig> again = ParseHfConfig(ToHfConfigJson(c), "saved");
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->family, c.family);
    EXPECT_EQ(again->NumParameters(), c.NumParameters());
    EXPECT_EQ(again->head_dim(), c.head_dim());
    EXPECT_EQ(again->sliding_window, c.sliding_window);
    EXPECT_EQ(again->window_from_layer, c.window_from_layer);
    EXPECT_EQ(again->embed_dim(), c.embed_dim());
    EXPECT_EQ(again->layer_norm_before, c.layer_norm_before);
    EXPECT_EQ(again->tie_embeddings, c.tie_embeddings);
    EXPECT_EQ(again->attention_bias, c.attention_bias);
    EXPECT_EQ(again->mlp_bias, c.mlp_bias);
  }
}

TEST(ModelConfigTest, KeysThatChangeTheMathsAreRefusedByName) {
  const std::string opt = R"({"model_type": "opt", "vocab_size": 50, "hidden_size": 16,
      "ffn_dim": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
      "max_position_embeddings": 32)";
  EXPECT_TRUE(ParseHfConfig(opt + "}", "c").ok());
  for (const auto& [extra, key] : std::vector<std::pair<std::string, std::string>>{
           {R"(, "enable_bias": false)", "\"enable_bias\""},
           {R"(, "layer_norm_elementwise_affine": false)", "\"layer_norm_elementwise_affine\""},
           {R"(, "activation_function": "gelu")", "\"activation_function\""},
           {R"(, "tie_word_embeddings": false)", "\"tie_word_embeddings\""}}) {
    EXPECT_THAT(ParseHfConfig(opt + extra + "}", "c").status().message(), HasSubstr(key)) << extra;
  }
  const std::string rope = R"({"vocab_size": 50, "hidden_size": 16, "intermediate_size": 32,
      "num_hidden_layers": 2, "num_attention_heads": 2)";
  for (const auto& [extra, key] : std::vector<std::pair<std::string, std::string>>{
           {R"(, "model_type": "mistral", "attention_bias": true)", "\"attention_bias\""},
           {R"(, "model_type": "llama", "partial_rotary_factor": 0.5)",
            "\"partial_rotary_factor\""},
           {R"(, "model_type": "qwen2", "pretraining_tp": 2)", "\"pretraining_tp\""},
           {R"(, "model_type": "qwen3", "layer_types": ["full_attention"])", "\"layer_types\""},
           {R"(, "model_type": "qwen2", "hidden_act": "gelu")", "\"hidden_act\""}}) {
    EXPECT_THAT(ParseHfConfig(rope + extra + "}", "c").status().message(), HasSubstr(key)) << extra;
  }
  // Defaults as transformers has them: Mistral's window 4096 unless null; Qwen3's head_dim 128;
  // Qwen2's window only with use_sliding_window.
  absl::StatusOr<ModelConfig> m = ParseHfConfig(rope + R"(, "model_type": "mistral"})", "c");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->sliding_window, 4096);
  m = ParseHfConfig(rope + R"(, "model_type": "mistral", "sliding_window": null})", "c");
  EXPECT_EQ(m->sliding_window, 0);
  m = ParseHfConfig(rope + R"(, "model_type": "qwen3"})", "c");
  EXPECT_EQ(m->head_dim(), 128);
  m = ParseHfConfig(rope + R"(, "model_type": "qwen2", "sliding_window": 64})", "c");
  EXPECT_EQ(m->sliding_window, 0);
  m = ParseHfConfig(
      rope + R"(, "model_type": "qwen2", "use_sliding_window": true, "sliding_window": 64,
      "max_window_layers": 1})",
      "c");
  EXPECT_EQ(m->WindowOfLayer(0), 0);
  EXPECT_EQ(m->WindowOfLayer(1), 64);
  // An explicit null window is no window, as in transformers.
  m = ParseHfConfig(rope + R"(, "model_type": "qwen2", "use_sliding_window": true,
      "sliding_window": null})",
                    "c");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->WindowOfLayer(1), 0);
  // layer_types that agree with the window keys are accepted; others are refused by index.
  const std::string windowed = rope + R"(, "model_type": "qwen3", "use_sliding_window": true,
      "sliding_window": 64, "max_window_layers": 1, "layer_types": )";
  EXPECT_TRUE(ParseHfConfig(windowed + R"(["full_attention", "sliding_attention"]})", "c").ok());
  EXPECT_THAT(ParseHfConfig(windowed + R"(["sliding_attention", "sliding_attention"]})", "c")
                  .status()
                  .message(),
              HasSubstr("\"layer_types\" [0]"));
  // Widths whose products would overflow the kernels' int indexing are refused.
  EXPECT_THAT(ParseHfConfig(R"({"model_type": "qwen3", "vocab_size": 50, "hidden_size": 32,
      "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 65536,
      "num_key_value_heads": 65536, "head_dim": 65536})",
                            "c")
                  .status()
                  .message(),
              HasSubstr("model widths exceed"));
}

// The published config.json of six hub models, every key as shipped (testdata/hub_configs,
// sources in SOURCES.md there): each parses, has the published parameter count (tied heads
// counted once) and the family's features, and reads back the same from what Strata writes.
TEST(ModelConfigTest, PublishedHubConfigsParseToTheirParameterCounts) {
  struct Hub {
    const char* file;
    ModelFamily family;
    int64_t parameters;
  };
  const Hub hubs[] = {
      {"opt-125m.json", ModelFamily::kOpt, 125239296},
      {"opt-350m.json", ModelFamily::kOpt, 331196416},
      {"qwen2.5-0.5b.json", ModelFamily::kQwen2, 494032768},
      {"qwen3-0.6b.json", ModelFamily::kQwen3, 596049920},
      {"mistral-7b-v0.1.json", ModelFamily::kMistral, 7241732096},
      {"llama-3.2-1b.json", ModelFamily::kLlama, 1235814400},
  };
  for (const Hub& hub : hubs) {
    SCOPED_TRACE(hub.file);
    absl::StatusOr<ModelConfig> c =
        ReadHfConfig(std::string("runtime/model/testdata/hub_configs/") + hub.file);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->family, hub.family);
    EXPECT_EQ(c->NumParameters(), hub.parameters);
    absl::StatusOr<ModelConfig> again = ParseHfConfig(ToHfConfigJson(*c), "saved");
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->NumParameters(), hub.parameters);
    EXPECT_EQ(again->sliding_window, c->sliding_window);
    EXPECT_EQ(again->rope_scaling.kind, c->rope_scaling.kind);
  }
  const ModelConfig opt350 = *ReadHfConfig("runtime/model/testdata/hub_configs/opt-350m.json");
  EXPECT_FALSE(opt350.arch().pre_norm);
  EXPECT_FALSE(opt350.arch().final_norm);
  EXPECT_TRUE(opt350.arch().projections);
  EXPECT_EQ(opt350.embed_dim(), 512);
  const ModelConfig qwen3 = *ReadHfConfig("runtime/model/testdata/hub_configs/qwen3-0.6b.json");
  EXPECT_EQ(qwen3.head_dim(), 128);
  EXPECT_EQ(qwen3.q_dim(), 2048);  // Wider than hidden_size 1024.
  EXPECT_TRUE(qwen3.arch().qk_norm);
  const ModelConfig mistral =
      *ReadHfConfig("runtime/model/testdata/hub_configs/mistral-7b-v0.1.json");
  EXPECT_EQ(mistral.WindowOfLayer(0), 4096);
  const ModelConfig qwen25 = *ReadHfConfig("runtime/model/testdata/hub_configs/qwen2.5-0.5b.json");
  EXPECT_EQ(qwen25.WindowOfLayer(23), 0);  // use_sliding_window is false.
  EXPECT_TRUE(qwen25.arch().qkv_bias);
  EXPECT_FALSE(qwen25.arch().o_bias);
}

}  // namespace
}  // namespace strata
