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

}  // namespace
}  // namespace strata
