// Token choice on hand-made logits: the argmax and its ties, the filtered distribution of
// temperature, top-k and top-p (the nucleus as Hugging Face defines it), draws that follow it,
// counter-based seeds, and options refused by name.
#include "runtime/generate/sampling.h"

#include <cmath>
#include <limits>
#include <map>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

// Logits whose softmax is `probabilities`.
std::vector<float> LogitsOf(const std::vector<double>& probabilities) {
  std::vector<float> logits;
  for (double p : probabilities) logits.push_back(static_cast<float>(std::log(p) + 3.0));
  return logits;
}

SamplingOptions Sampling(float temperature, int top_k = 0, float top_p = 1.0f, uint64_t seed = 1) {
  SamplingOptions o;
  o.temperature = temperature;
  o.top_k = top_k;
  o.top_p = top_p;
  o.seed = seed;
  return o;
}

// id -> probability.
std::map<int32_t, double> AsMap(const std::vector<Candidate>& candidates) {
  std::map<int32_t, double> m;
  for (const Candidate& c : candidates) m[c.id] = c.probability;
  return m;
}

// Probabilities by id: 0.1, 0.5, 0.15, 0.25 (most likely first: 1, 3, 2, 0).
const std::vector<double> kProbs = {0.1, 0.5, 0.15, 0.25};

TEST(SamplingTest, ArgmaxTakesTheLowestIdAmongEqualLogits) {
  EXPECT_EQ(Argmax(std::vector<float>{0.5f, 2.0f, -1.0f, 2.0f}), 1);
  EXPECT_EQ(Argmax(std::vector<float>{3.0f}), 0);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(Argmax(std::vector<float>{nan, -5.0f, nan}), 1);
}

TEST(SamplingTest, TemperatureOneIsTheSoftmaxMostLikelyFirst) {
  const std::vector<Candidate> c = FilteredDistribution(LogitsOf(kProbs), Sampling(1.0f));
  ASSERT_EQ(c.size(), 4u);
  const int32_t order[] = {1, 3, 2, 0};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(c[i].id, order[i]);
    EXPECT_NEAR(c[i].probability, kProbs[order[i]], 1e-6);
  }
}

TEST(SamplingTest, TemperatureSharpensOrFlattens) {
  // softmax(log p / t) is proportional to p^(1/t).
  for (float t : {0.5f, 2.0f}) {
    std::map<int32_t, double> got = AsMap(FilteredDistribution(LogitsOf(kProbs), Sampling(t)));
    double z = 0;
    for (double p : kProbs) z += std::pow(p, 1.0 / t);
    for (int id = 0; id < 4; ++id) {
      EXPECT_NEAR(got[id], std::pow(kProbs[id], 1.0 / t) / z, 1e-6) << "t=" << t << " id " << id;
    }
  }
}

TEST(SamplingTest, TopPKeepsTheSmallestSetReachingP) {
  const std::vector<float> logits = LogitsOf(kProbs);
  // 0.3: the most likely token alone already reaches it.
  EXPECT_EQ(AsMap(FilteredDistribution(logits, Sampling(1.0f, 0, 0.3f))),
            (std::map<int32_t, double>{{1, 1.0}}));
  // 0.6: 0.5 is short of it, 0.5 + 0.25 reaches it; renormalized over 0.75.
  std::map<int32_t, double> got = AsMap(FilteredDistribution(logits, Sampling(1.0f, 0, 0.6f)));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_NEAR(got[1], 0.5 / 0.75, 1e-6);
  EXPECT_NEAR(got[3], 0.25 / 0.75, 1e-6);
  // 0.8: three tokens (0.9 >= 0.8), the least likely (0.1) is dropped.
  got = AsMap(FilteredDistribution(logits, Sampling(1.0f, 0, 0.8f)));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got.count(0), 0u);
  EXPECT_NEAR(got[2], 0.15 / 0.9, 1e-6);
  // 1: everything.
  EXPECT_EQ(FilteredDistribution(logits, Sampling(1.0f, 0, 1.0f)).size(), 4u);
  // Hugging Face's rule on a larger case: sorted ascending, a token is removed when the
  // cumulative probability up to and including it is <= 1 - top_p.
  const std::vector<double> p = {0.02, 0.3, 0.08, 0.05, 0.2, 0.1, 0.25};
  for (float top_p : {0.35f, 0.5f, 0.62f, 0.9f, 0.97f}) {
    std::vector<int32_t> ascending = {0, 3, 2, 5, 4, 6, 1};
    std::map<int32_t, double> expected;
    double cumulative = 0, kept = 0;
    for (int32_t id : ascending) {
      cumulative += p[id];
      if (cumulative > 1.0 - top_p + 1e-12) {
        expected[id] = p[id];
        kept += p[id];
      }
    }
    for (auto& [id, q] : expected) q /= kept;
    got = AsMap(FilteredDistribution(LogitsOf(p), Sampling(1.0f, 0, top_p)));
    ASSERT_EQ(got.size(), expected.size()) << "top_p " << top_p;
    for (const auto& [id, q] : expected) EXPECT_NEAR(got[id], q, 1e-6) << "top_p " << top_p;
  }
}

TEST(SamplingTest, TopKThenTopP) {
  const std::vector<float> logits = LogitsOf(kProbs);
  std::map<int32_t, double> got = AsMap(FilteredDistribution(logits, Sampling(1.0f, 2)));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_NEAR(got[1], 2.0 / 3.0, 1e-6);
  EXPECT_NEAR(got[3], 1.0 / 3.0, 1e-6);
  // top_k 3 leaves 0.5, 0.25, 0.15 (renormalized: .556, .278, .167); top_p 0.7 then keeps two.
  got = AsMap(FilteredDistribution(logits, Sampling(1.0f, 3, 0.7f)));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_NEAR(got[1], 2.0 / 3.0, 1e-6);
  // top_k beyond the vocabulary is no limit.
  EXPECT_EQ(FilteredDistribution(logits, Sampling(1.0f, 100)).size(), 4u);
}

TEST(SamplingTest, DrawsFollowTheFilteredDistribution) {
  const std::vector<float> logits = LogitsOf(kProbs);
  constexpr int kDraws = 40000;
  for (const SamplingOptions& o : {Sampling(1.0f, 0, 1.0f, 7), Sampling(1.0f, 0, 0.6f, 8)}) {
    std::map<int32_t, double> expected = AsMap(FilteredDistribution(logits, o));
    std::map<int32_t, int> count;
    for (int step = 0; step < kDraws; ++step) ++count[ChooseToken(logits, o, step)];
    for (const auto& [id, n] : count) {
      ASSERT_EQ(expected.count(id), 1u) << "drew filtered-out token " << id;
      // Binomial standard deviation <= 0.0025; allow 4 of them.
      EXPECT_NEAR(static_cast<double>(n) / kDraws, expected[id], 0.01) << "id " << id;
    }
    EXPECT_EQ(count.size(), expected.size());
  }
}

TEST(SamplingTest, GreedyAndTopKOneTakeTheArgmax) {
  const std::vector<float> logits = {0.1f, 4.0f, 4.0f, -2.0f};
  for (int step = 0; step < 50; ++step) {
    EXPECT_EQ(ChooseToken(logits, Sampling(0.0f, 0, 1.0f, step), step), 1);
    EXPECT_EQ(ChooseToken(logits, Sampling(3.0f, 1, 1.0f, step), step), 1);
  }
}

TEST(SamplingTest, DrawsAreCountedNotSequential) {
  EXPECT_EQ(DrawUniform(42, 5), DrawUniform(42, 5));
  EXPECT_NE(DrawUniform(42, 5), DrawUniform(42, 6));
  EXPECT_NE(DrawUniform(42, 5), DrawUniform(43, 5));
  for (int64_t step = 0; step < 1000; ++step) {
    const double u = DrawUniform(9, step);
    EXPECT_GT(u, 0.0);
    EXPECT_LT(u, 1.0);
  }
  // The choice of a step depends on its own draw only.
  const std::vector<float> logits = LogitsOf(kProbs);
  const SamplingOptions o = Sampling(1.0f, 0, 1.0f, 11);
  const int32_t late = ChooseToken(logits, o, 17);
  for (int64_t step = 0; step < 17; ++step) ChooseToken(logits, o, step);
  EXPECT_EQ(ChooseToken(logits, o, 17), late);
}

TEST(SamplingTest, BadOptionsAreRefusedByName) {
  EXPECT_TRUE(ValidateSampling(Sampling(0.0f)).ok());
  EXPECT_TRUE(ValidateSampling(Sampling(0.7f, 40, 0.9f)).ok());
  EXPECT_THAT(ValidateSampling(Sampling(-1.0f)).message(), HasSubstr("temperature"));
  EXPECT_THAT(ValidateSampling(Sampling(std::numeric_limits<float>::quiet_NaN())).message(),
              HasSubstr("temperature"));
  EXPECT_THAT(ValidateSampling(Sampling(1.0f, -1)).message(), HasSubstr("top_k"));
  EXPECT_THAT(ValidateSampling(Sampling(1.0f, 0, 0.0f)).message(), HasSubstr("top_p"));
  EXPECT_THAT(ValidateSampling(Sampling(1.0f, 0, 1.5f)).message(), HasSubstr("top_p"));
  EXPECT_THAT(ValidateSampling(Sampling(0.0f, 5)).message(), HasSubstr("temperature > 0"));
  EXPECT_THAT(ValidateSampling(Sampling(0.0f, 0, 0.9f)).message(), HasSubstr("temperature > 0"));
}

}  // namespace
}  // namespace strata
