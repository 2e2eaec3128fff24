#include "runtime/model/model_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

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
  std::string yarn = kLlama32_1B;
  yarn.replace(yarn.find("\"llama3\""), 8, "\"yarn\"");
  EXPECT_THAT(ParseHfConfig(yarn, "c").status().message(),
              HasSubstr("rope_scaling: \"rope_type\" \"yarn\" is not supported"));
}

}  // namespace
}  // namespace strata
