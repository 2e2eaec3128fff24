// ZO optimizers on a tiny model: the scalar is MeZO's two-sided estimate from out-of-place
// perturbations, replaying the records rebuilds the weights bit for bit for every variant, the
// thread count does not change a bit, and each variant does what its definition says.
#include "runtime/zo/zo_optimizer.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/base/thread_pool.h"
#include "runtime/testing/tiny_models.h"

namespace strata::zo {
namespace {

ModelConfig Tiny(ModelFamily family = ModelFamily::kGpt2) {
  ModelConfig c;
  c.family = family;
  c.vocab_size = 41;
  c.max_seq_len = 16;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_kv_head = family == ModelFamily::kLlama ? 1 : 2;
  c.d_model = 16;
  c.d_ff = 32;
  c.tie_embeddings = family == ModelFamily::kGpt2;
  return testing_models::WithFamilyFeatures(c);
}

struct Fixture {
  std::unique_ptr<Transformer> model;
  std::vector<int32_t> tokens, targets;
  int B = 2, T = 8;
  explicit Fixture(ModelFamily family = ModelFamily::kGpt2) {
    model = *Transformer::Create(Tiny(family));
    model->InitializeParameters(21);
    std::mt19937 rng(4);
    for (int i = 0; i < B * T; ++i) {
      tokens.push_back(rng() % 41);
      targets.push_back(rng() % 41);
    }
  }
  std::vector<float> Params() const {
    return std::vector<float>(model->params().begin(), model->params().end());
  }
};

bool SameBits(const std::vector<float>& a, absl::Span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

std::vector<ZoStepRecord> Train(Fixture& f, const ZoConfig& config, int steps) {
  auto opt = ZoOptimizer::Create(f.model.get(), config);
  EXPECT_TRUE(opt.ok()) << opt.status();
  std::vector<ZoStepRecord> records;
  for (int s = 1; s <= steps; ++s) {
    auto r = (*opt)->Step(f.tokens, f.targets, f.B, f.T, s, 1e-3);
    EXPECT_TRUE(r.ok()) << r.status();
    records.push_back(*r);
  }
  (*opt)->Flush();
  return records;
}

struct VariantCase {
  const char* name;
  ZoConfig config;
};

std::vector<VariantCase> Variants() {
  std::vector<VariantCase> v;
  ZoConfig base;
  base.seed = 7;
  base.weight_decay = 0.01f;
  v.push_back({"sgd", base});
  ZoConfig c = base;
  c.variant = ZoVariant::kSign;
  v.push_back({"sign", c});
  c = base;
  c.variant = ZoVariant::kMomentum;
  v.push_back({"momentum", c});
  c = base;
  c.variant = ZoVariant::kAdam;
  v.push_back({"adam", c});
  c = base;
  c.num_perturbations = 3;
  v.push_back({"nspsa3", c});
  c = base;
  c.one_sided = true;
  v.push_back({"one_sided", c});
  c.num_perturbations = 3;
  v.push_back({"one_sided_nspsa3", c});
  c = base;
  c.distribution = Distribution::kRademacher;
  v.push_back({"rademacher", c});
  c = base;
  c.sparse_quantile = 0.5f;
  v.push_back({"sparse", c});
  return v;
}

TEST(ZoOptimizerTest, ReplayRebuildsWeightsBitForBitForEveryVariant) {
  for (const VariantCase& vc : Variants()) {
    SCOPED_TRACE(vc.name);
    Fixture trained;
    const std::vector<float> theta0 = trained.Params();
    const std::vector<ZoStepRecord> records = Train(trained, vc.config, 6);
    Fixture replayed;
    ASSERT_TRUE(SameBits(theta0, replayed.model->params()));
    auto opt = ZoOptimizer::Create(replayed.model.get(), vc.config);
    ASSERT_TRUE(opt.ok());
    for (const ZoStepRecord& r : records) ASSERT_TRUE((*opt)->Replay(r).ok());
    EXPECT_TRUE(SameBits(trained.Params(), replayed.model->params()));
    EXPECT_FALSE(SameBits(theta0, replayed.model->params()));
  }
}

TEST(ZoOptimizerTest, ReplayIsBitwiseForEveryFamily) {
  for (ModelFamily family : testing_models::AllFamilies()) {
    SCOPED_TRACE(ModelFamilyName(family));
    ZoConfig config;
    config.seed = 3;
    config.weight_decay = 0.01f;
    Fixture trained(family);
    const std::vector<float> theta0 = trained.Params();
    const std::vector<ZoStepRecord> records = Train(trained, config, 4);
    Fixture replayed(family);
    auto opt = ZoOptimizer::Create(replayed.model.get(), config);
    ASSERT_TRUE(opt.ok());
    for (const ZoStepRecord& r : records) ASSERT_TRUE((*opt)->Replay(r).ok());
    EXPECT_TRUE(SameBits(trained.Params(), replayed.model->params()));
    EXPECT_FALSE(SameBits(theta0, replayed.model->params()));
  }
}

TEST(ZoOptimizerTest, ThreadCountDoesNotChangeABit) {
  ThreadPool& pool = ThreadPool::Global();
  const int threads = pool.threads();
  ZoConfig config;
  config.seed = 3;
  pool.SetThreads(1);
  Fixture one;
  const auto r1 = Train(one, config, 4);
  pool.SetThreads(2);
  Fixture two;
  const auto r2 = Train(two, config, 4);
  pool.SetThreads(threads);
  EXPECT_TRUE(SameBits(one.Params(), two.model->params()));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(r1[i].scalars, r2[i].scalars);
}

TEST(ZoOptimizerTest, ScalarIsTheTwoSidedEstimateFromTheCleanWeights) {
  for (ModelFamily family : testing_models::AllFamilies()) {
    SCOPED_TRACE(ModelFamilyName(family));
    Fixture f(family);
    ZoConfig config;
    config.seed = 11;
    config.eps = 1e-2f;
    const std::vector<float> theta = f.Params();
    auto opt = ZoOptimizer::Create(f.model.get(), config);
    auto record = (*opt)->Step(f.tokens, f.targets, f.B, f.T, 1, 1e-3);
    ASSERT_TRUE(record.ok());
    // Clean weights untouched until the deferred update.
    EXPECT_TRUE(SameBits(theta, f.model->params()));
    std::vector<float> plus(theta.size()), minus(theta.size());
    for (const TensorInfo& t : f.model->layout().tensors()) {
      std::vector<float> z(t.numel);
      GenerateNoise(z.data(), 0, t.numel, t.id, NoiseKey{record->seed, 0, Distribution::kGaussian});
      for (int64_t i = 0; i < t.numel; ++i) {
        volatile float step = config.eps * z[i];
        plus[t.offset + i] = theta[t.offset + i] + step;
        minus[t.offset + i] = theta[t.offset + i] - step;
      }
    }
    const float lp = *f.model->Loss(f.tokens, f.targets, f.B, f.T, plus.data());
    const float lm = *f.model->Loss(f.tokens, f.targets, f.B, f.T, minus.data());
    EXPECT_EQ(record->scalars[0],
              static_cast<float>((double{lp} - double{lm}) / (2.0 * double{config.eps})));
    EXPECT_FLOAT_EQ(record->loss, 0.5f * (lp + lm));
  }
}

TEST(ZoOptimizerTest, OneSidedScalarComparesWithTheCleanLoss) {
  Fixture f;
  ZoConfig config;
  config.one_sided = true;
  config.eps = 1e-2f;
  const std::vector<float> theta = f.Params();
  auto record =
      (*ZoOptimizer::Create(f.model.get(), config))->Step(f.tokens, f.targets, f.B, f.T, 1, 1e-3);
  ASSERT_TRUE(record.ok());
  std::vector<float> plus(theta.size());
  for (const TensorInfo& t : f.model->layout().tensors()) {
    std::vector<float> z(t.numel);
    GenerateNoise(z.data(), 0, t.numel, t.id, NoiseKey{record->seed, 0, Distribution::kGaussian});
    for (int64_t i = 0; i < t.numel; ++i) {
      volatile float step = config.eps * z[i];
      plus[t.offset + i] = theta[t.offset + i] + step;
    }
  }
  const float lp = *f.model->Loss(f.tokens, f.targets, f.B, f.T, plus.data());
  const float l0 = *f.model->Loss(f.tokens, f.targets, f.B, f.T);
  EXPECT_EQ(record->scalars[0], static_cast<float>((double{lp} - double{l0}) / double{config.eps}));
}

TEST(ZoOptimizerTest, MomentumAccumulatesAndAdamNormalizes) {
  // Momentum after two steps: m = beta g1 z1 + g2 z2 (element-wise).
  Fixture f;
  ZoConfig config;
  config.variant = ZoVariant::kMomentum;
  config.momentum = 0.5f;
  auto opt = ZoOptimizer::Create(f.model.get(), config);
  ASSERT_TRUE((*opt)->Replay(ZoStepRecord{1, 10, {2.0f}, 1e-3, false, 0}).ok());
  ASSERT_TRUE((*opt)->Replay(ZoStepRecord{2, 11, {-3.0f}, 1e-3, false, 0}).ok());
  const TensorInfo& t = f.model->layout().tensor(0);
  std::vector<float> z1(8), z2(8);
  GenerateNoise(z1.data(), 0, 8, 0, NoiseKey{10, 0, Distribution::kGaussian});
  GenerateNoise(z2.data(), 0, 8, 0, NoiseKey{11, 0, Distribution::kGaussian});
  for (int i = 0; i < 8; ++i) {
    EXPECT_NEAR((*opt)->m()[t.offset + i], 0.5f * 2.0f * z1[i] - 3.0f * z2[i], 1e-5);
  }
  // Adam's first step moves every unmasked weight by lr (m_hat / sqrt(v_hat) = sign(g z)).
  Fixture a;
  ZoConfig adam;
  adam.variant = ZoVariant::kAdam;
  adam.adam_eps = 1e-12f;
  const std::vector<float> theta = a.Params();
  ASSERT_TRUE((*ZoOptimizer::Create(a.model.get(), adam))
                  ->Replay(ZoStepRecord{1, 12, {0.7f}, 1e-3, false, 0})
                  .ok());
  std::vector<float> z(8);
  GenerateNoise(z.data(), 0, 8, 0, NoiseKey{12, 0, Distribution::kGaussian});
  for (int i = 0; i < 8; ++i) {
    const float moved = theta[i] - a.model->params()[i];
    EXPECT_NEAR(moved, z[i] > 0 ? 1e-3f : -1e-3f, 1e-6) << i;
  }
}

TEST(ZoOptimizerTest, SignUsesOnlyTheSignOfTheScalar) {
  ZoConfig config;
  config.variant = ZoVariant::kSign;
  ZoStepRecord a{1, 99, {0.25f}, 1e-2, false, 0};
  ZoStepRecord b{1, 99, {75.0f}, 1e-2, false, 0};
  Fixture fa, fb;
  ASSERT_TRUE((*ZoOptimizer::Create(fa.model.get(), config))->Replay(a).ok());
  ASSERT_TRUE((*ZoOptimizer::Create(fb.model.get(), config))->Replay(b).ok());
  EXPECT_TRUE(SameBits(fa.Params(), fb.model->params()));
  ZoStepRecord c{1, 99, {-0.25f}, 1e-2, false, 0};
  Fixture fc;
  ASSERT_TRUE((*ZoOptimizer::Create(fc.model.get(), config))->Replay(c).ok());
  EXPECT_FALSE(SameBits(fa.Params(), fc.model->params()));
}

TEST(ZoOptimizerTest, SparsePerturbsAndUpdatesOnlySmallWeights) {
  Fixture f;
  ZoConfig config;
  config.sparse_quantile = 0.3f;
  const std::vector<float> theta = f.Params();
  auto opt = ZoOptimizer::Create(f.model.get(), config);
  ASSERT_TRUE((*opt)->Replay(ZoStepRecord{1, 5, {3.0f}, 1e-2, false, 0}).ok());
  int64_t changed = 0, total = 0;
  for (const TensorInfo& t : f.model->layout().tensors()) {
    const float threshold = (*opt)->thresholds()[t.id];
    for (int64_t i = 0; i < t.numel; ++i) {
      const float before = theta[t.offset + i], after = f.model->params()[t.offset + i];
      if (std::fabs(before) >= threshold) {
        ASSERT_EQ(before, after) << t.name;
      }
      changed += before != after;
      ++total;
    }
  }
  EXPECT_GT(changed, total / 5);
  EXPECT_LT(changed, total * 2 / 5);
}

TEST(ZoOptimizerTest, WeightDecaySkipsNormsAndBiases) {
  Fixture f;
  ZoConfig config;
  config.weight_decay = 0.5f;
  const std::vector<float> theta = f.Params();
  ASSERT_TRUE((*ZoOptimizer::Create(f.model.get(), config))
                  ->Replay(ZoStepRecord{1, 5, {0.0f}, 0.1, false, 0})
                  .ok());
  for (const TensorInfo& t : f.model->layout().tensors()) {
    const float before = theta[t.offset], after = f.model->params()[t.offset];
    if (RoleTakesWeightDecay(t.role)) {
      volatile float d = 0.05f * before;
      EXPECT_EQ(after, (before - 0.0f) - d) << t.name;
    } else {
      EXPECT_EQ(after, before) << t.name;
    }
  }
}

TEST(ZoOptimizerTest, NonFiniteLossSkipsTheStepAndClipBoundsTheScalar) {
  Fixture f;
  const int ln = f.model->layout().final_norm_weight_id();
  f.model->params()[f.model->layout().tensor(ln).offset] = NAN;
  const std::vector<float> theta = f.Params();
  ZoConfig config;
  auto opt = ZoOptimizer::Create(f.model.get(), config);
  auto r = (*opt)->Step(f.tokens, f.targets, f.B, f.T, 1, 1e-2);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->skipped);
  (*opt)->Flush();
  EXPECT_TRUE(SameBits(theta, f.model->params()));

  Fixture g;
  config.scalar_clip = 1e-4f;
  config.eps = 1e-4f;
  auto clipped =
      (*ZoOptimizer::Create(g.model.get(), config))->Step(g.tokens, g.targets, g.B, g.T, 1, 1e-2);
  ASSERT_TRUE(clipped.ok());
  EXPECT_LE(std::fabs(clipped->scalars[0]), 1e-4f);
}

TEST(ZoOptimizerTest, StepsReduceTheTrainingLoss) {
  Fixture f;
  const float before = *f.model->Loss(f.tokens, f.targets, f.B, f.T);
  ZoConfig config;
  config.seed = 1;
  auto opt = ZoOptimizer::Create(f.model.get(), config);
  for (int s = 1; s <= 400; ++s) {
    ASSERT_TRUE((*opt)->Step(f.tokens, f.targets, f.B, f.T, s, 2e-3).ok());
  }
  (*opt)->Flush();
  const float after = *f.model->Loss(f.tokens, f.targets, f.B, f.T);
  EXPECT_LT(after, before - 0.1f) << before << " -> " << after;
}

TEST(ZoOptimizerTest, RejectsUnsupportedCombinations) {
  Fixture f;
  ZoConfig config;
  config.variant = ZoVariant::kAdam;
  config.num_perturbations = 2;
  EXPECT_EQ(ZoOptimizer::Create(f.model.get(), config).status().code(),
            absl::StatusCode::kInvalidArgument);
  config = ZoConfig();
  config.eps = 0;
  EXPECT_FALSE(ZoOptimizer::Create(f.model.get(), config).ok());
}

}  // namespace
}  // namespace strata::zo
