#include "runtime/model/bf16_weights.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/testing/tiny_models.h"
#include "storage/safetensors/safetensors.h"

namespace strata {
namespace {

TEST(Bf16Test, ConversionsMatchTheScalarReference) {
  std::vector<float> x(100003);
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 10.0f);
  for (float& v : x) v = dist(rng);
  x[5] = NAN;
  x[6] = INFINITY;
  x[7] = -0.0f;
  std::vector<uint16_t> b(x.size());
  F32ToBf16(b.data(), x.data(), x.size());
  std::vector<float> back(x.size());
  Bf16ToF32(back.data(), b.data(), b.size());
  for (size_t i = 0; i < x.size(); ++i) {
    if (i == 5) {
      ASSERT_TRUE(std::isnan(back[i]));
      continue;
    }
    ASSERT_EQ(b[i], FloatToBf16(x[i])) << i;
    ASSERT_EQ(back[i], Bf16ToFloat(b[i])) << i;
  }
}

TEST(Bf16WeightsTest, LossEqualsFp32ComputeOnRoundedWeightsAndHalvesStorage) {
  for (ModelFamily family : testing_models::AllFamilies()) {
    SCOPED_TRACE(ModelFamilyName(family));
    ModelConfig c;
    c.family = family;
    c.vocab_size = 61;
    c.max_seq_len = 16;
    c.n_layer = 3;
    c.n_head = 4;
    c.n_kv_head = family == ModelFamily::kLlama ? 2 : 4;
    c.d_model = 32;
    c.d_ff = 48;
    c.tie_embeddings = family == ModelFamily::kGpt2;
    c = testing_models::WithFamilyFeatures(c);
    auto model = Transformer::Create(c);
    ASSERT_TRUE(model.ok());
    (*model)->InitializeParameters(5);
    Bf16Weights weights((*model)->layout(), (*model)->params());
    EXPECT_EQ(weights.StorageBytes() * 2,
              static_cast<int64_t>((*model)->params().size() * sizeof(float)));
    std::vector<float> rounded((*model)->params().size());
    weights.ToF32(absl::MakeSpan(rounded));
    std::vector<int32_t> tokens(2 * 9), targets(2 * 9);
    for (int i = 0; i < 18; ++i) {
      tokens[i] = (i * 7) % 61;
      targets[i] = (i * 11 + 3) % 61;
    }
    const float reference = *(*model)->Loss(tokens, targets, 2, 9, rounded.data());
    EXPECT_EQ(*weights.Loss(**model, tokens, targets, 2, 9), reference);
    const float full = *(*model)->Loss(tokens, targets, 2, 9);
    EXPECT_NEAR(reference, full, 1e-2 * full);
  }
}

}  // namespace
}  // namespace strata
