#include "runtime/optim/adamw.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "storage/safetensors/safetensors.h"

namespace strata {
namespace {

TEST(AdamWTest, MatchesTheReferenceRecurrence) {
  const int n = 40000;
  std::vector<float> p(n), g(n), m(n, 0.0f), v(n, 0.0f);
  std::vector<double> rp(n), rm(n, 0.0), rv(n, 0.0);
  for (int i = 0; i < n; ++i) rp[i] = p[i] = std::sin(i * 0.37f);
  AdamWConfig c;
  c.weight_decay = 0.1f;
  for (int step = 1; step <= 3; ++step) {
    for (int i = 0; i < n; ++i) g[i] = std::cos(i * 0.11f + step);
    adamw_update(p.data(), g.data(), m.data(), v.data(), n, 1e-2f, c, step);
    for (int i = 0; i < n; ++i) {
      rm[i] = 0.9 * rm[i] + 0.1 * g[i];
      rv[i] = 0.999 * rv[i] + 0.001 * g[i] * g[i];
      const double mh = rm[i] / (1 - std::pow(0.9, step)), vh = rv[i] / (1 - std::pow(0.999, step));
      rp[i] -= 1e-2 * (mh / (std::sqrt(vh) + 1e-8) + 0.1 * rp[i]);
    }
  }
  for (int i = 0; i < n; i += 101) ASSERT_NEAR(p[i], rp[i], 2e-5) << i;
}

// The bf16 compute copy: the fp32 result is unchanged, each copy is FloatToBf16 of it (ties to
// even), a NaN stays a NaN; serial and parallel passes agree bit for bit.
TEST(AdamWTest, Bf16ComputeCopyIsTheRoundedMasterInTheSamePass) {
  const int n = 50000;
  std::vector<float> p(n), g(n), m(n, 0.0f), v(n, 0.0f);
  for (int i = 0; i < n; ++i) {
    p[i] = std::sin(i * 0.37f);
    g[i] = std::cos(i * 0.11f);
  }
  g[7] = NAN;  // Propagates into p[7].
  std::vector<float> p2 = p, m2 = m, v2 = v;
  std::vector<uint16_t> copy(n);
  AdamWConfig c;
  c.weight_decay = 0.1f;
  adamw_update(p.data(), g.data(), m.data(), v.data(), n, 1e-2f, c, 1);
  adamw_update(p2.data(), g.data(), m2.data(), v2.data(), n, 1e-2f, c, 1, /*parallel=*/false,
               copy.data());
  ASSERT_EQ(std::memcmp(p.data(), p2.data(), n * sizeof(float)), 0);
  ASSERT_EQ(std::memcmp(m.data(), m2.data(), n * sizeof(float)), 0);
  for (int i = 0; i < n; ++i) {
    if (i != 7) {
      ASSERT_EQ(copy[i], FloatToBf16(p[i])) << i;
    }
  }
  EXPECT_TRUE(std::isnan(Bf16ToFloat(copy[7])));
}

TEST(AdamWTest, NormsAndBiasesGetNoWeightDecay) {
  ModelConfig c;
  c.family = ModelFamily::kGpt2;
  c.vocab_size = 11;
  c.max_seq_len = 4;
  c.n_layer = 1;
  c.n_head = c.n_kv_head = 1;
  c.d_model = 4;
  c.d_ff = 8;
  ParamLayout layout(c);
  std::vector<float> params(layout.NumElements(), 1.0f), grads(layout.NumElements(), 0.0f);
  AdamWConfig config;
  config.weight_decay = 0.5f;
  AdamW adamw(layout, config);
  adamw.Step(absl::MakeSpan(params), grads, 0.1f);
  for (const TensorInfo& t : layout.tensors()) {
    const float expected = RoleTakesWeightDecay(t.role) ? 1.0f - 0.1f * 0.5f : 1.0f;
    EXPECT_FLOAT_EQ(params[t.offset], expected) << t.name;
  }
}

TEST(ClipGradNormTest, ScalesToTheBound) {
  std::vector<float> g = {3.0f, 4.0f};
  EXPECT_DOUBLE_EQ(ClipGradNorm(absl::MakeSpan(g), 1.0), 5.0);
  EXPECT_NEAR(g[0], 0.6f, 1e-6);
  EXPECT_NEAR(g[1], 0.8f, 1e-6);
  EXPECT_NEAR(ClipGradNorm(absl::MakeSpan(g), 10.0), 1.0, 1e-6);
}


}  // namespace
}  // namespace strata
