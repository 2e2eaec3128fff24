// The ZO noise and update kernels: Philox known answers, Gaussian statistics and accuracy,
// bitwise independence from tiling, threads and instruction set, a golden vector every platform
// must reproduce, and the exact update arithmetic.
#include "runtime/zo/zo_kernels.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/base/thread_pool.h"

namespace strata::zo {
namespace {

TEST(PhiloxTest, KnownAnswerVectors) {
  struct Case {
    uint32_t ctr[4], key[2], out[4];
  };
  // Random123's kat_vectors for philox4x32 with 10 rounds.
  const Case cases[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Case& c : cases) {
    uint32_t out[4];
    Philox(c.ctr, c.key, out);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], c.out[i]) << i;
  }
}

TEST(NoiseTest, GoldenValuesForSeed42) {
  // Any platform (x86 with any ISA, ARM, CUDA) must produce exactly these bits.
  std::vector<float> z(8);
  GenerateNoise(z.data(), 0, 8, 3, NoiseKey{42, 0, Distribution::kGaussian});
  const uint32_t golden[8] = {3222851933u, 1062820875u, 3207082356u, 3203299704u,
                              1062883381u, 1061270453u, 1005861545u, 1063789961u};
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>(z[i]), golden[i]) << i << ": " << z[i];
  }
}

TEST(NoiseTest, GaussianMomentsAndAccuracy) {
  const int64_t n = 1 << 21;
  std::vector<float> z(n);
  GenerateNoise(z.data(), 0, n, 7, NoiseKey{12345, 0, Distribution::kGaussian});
  double sum = 0, sq = 0, cube = 0, quad = 0;
  int64_t tail = 0;
  for (float v : z) {
    ASSERT_TRUE(std::isfinite(v));
    sum += v;
    sq += double(v) * v;
    cube += double(v) * v * v;
    quad += double(v) * v * v * v;
    tail += std::fabs(v) > 3.0f;
  }
  EXPECT_NEAR(sum / n, 0.0, 3e-3);
  EXPECT_NEAR(sq / n, 1.0, 5e-3);
  EXPECT_NEAR(cube / n, 0.0, 1e-2);
  EXPECT_NEAR(quad / n, 3.0, 3e-2);
  EXPECT_NEAR(static_cast<double>(tail) / n, 0.0026998, 3e-4);
}

TEST(NoiseTest, MatchesDoublePrecisionBoxMuller) {
  // Element 4j, 4j+1 come from Philox block j's first two words.
  std::vector<float> z(4000);
  const NoiseKey key{99, 2, Distribution::kGaussian};
  GenerateNoise(z.data(), 0, 4000, 5, key);
  for (int j = 0; j < 1000; ++j) {
    const uint32_t ctr[4] = {static_cast<uint32_t>(j), 0, 5, 2};
    const uint32_t k[2] = {99, 0};
    uint32_t r[4];
    Philox(ctr, k, r);
    const double u1 = ((r[0] >> 8) + 1.0) / 16777216.0, u2 = (r[1] >> 8) / 16777216.0;
    const double radius = std::sqrt(-2.0 * std::log(u1));
    ASSERT_NEAR(z[4 * j], radius * std::cos(2 * M_PI * u2), 2e-5 * (1 + radius)) << j;
    ASSERT_NEAR(z[4 * j + 1], radius * std::sin(2 * M_PI * u2), 2e-5 * (1 + radius)) << j;
  }
}

TEST(NoiseTest, IndependentOfTilingThreadsAndInstructionSet) {
  const int64_t n = 50000;
  const NoiseKey key{0xDEADBEEFCAFEULL, 1, Distribution::kGaussian};
  std::vector<float> whole(n);
  GenerateNoise(whole.data(), 0, n, 11, key);
  // Odd pieces starting anywhere.
  std::vector<float> pieces(n);
  for (int64_t first = 0; first < n;) {
    const int64_t len = std::min<int64_t>(n - first, 1 + (first * 7919) % 5003);
    GenerateNoise(pieces.data() + first, first, len, 11, key);
    first += len;
  }
  EXPECT_EQ(0, std::memcmp(whole.data(), pieces.data(), n * sizeof(float)));
  ThreadPool& pool = ThreadPool::Global();
  const int threads = pool.threads();
  for (int t : {1, 2, 3}) {
    pool.SetThreads(t);
    std::vector<float> again(n);
    GenerateNoise(again.data(), 0, n, 11, key);
    EXPECT_EQ(0, std::memcmp(whole.data(), again.data(), n * sizeof(float))) << t << " threads";
  }
  pool.SetThreads(threads);
  for (const char* isa : {"baseline", "avx2", "avx512"}) {
    if (std::string(isa) == "avx512" && !__builtin_cpu_supports("avx512f")) continue;
    if (std::string(isa) == "avx2" && !__builtin_cpu_supports("avx2")) continue;
    std::vector<float> variant(n);
    GenerateNoiseWithIsa(isa, variant.data(), 0, n, 11, key);
    EXPECT_EQ(0, std::memcmp(whole.data(), variant.data(), n * sizeof(float))) << isa;
  }
}

TEST(NoiseTest, StreamsAndTensorsAreDistinctAndRademacherIsPlusMinusOne) {
  std::vector<float> a(64), b(64), c(64), r(10000);
  GenerateNoise(a.data(), 0, 64, 1, NoiseKey{5, 0, Distribution::kGaussian});
  GenerateNoise(b.data(), 0, 64, 2, NoiseKey{5, 0, Distribution::kGaussian});
  GenerateNoise(c.data(), 0, 64, 1, NoiseKey{5, 1, Distribution::kGaussian});
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  GenerateNoise(r.data(), 0, 10000, 1, NoiseKey{5, 0, Distribution::kRademacher});
  double sum = 0;
  for (float v : r) {
    ASSERT_TRUE(v == 1.0f || v == -1.0f);
    sum += v;
  }
  EXPECT_LT(std::fabs(sum / 10000), 0.05);
}

TEST(UpdateTest, ExactArithmeticAndMasking) {
  const int64_t n = 9000;
  std::vector<float> theta(n), z(n);
  for (int64_t i = 0; i < n; ++i) theta[i] = std::sin(i * 0.1f) * 0.3f;
  const NoiseKey key{77, 0, Distribution::kGaussian};
  GenerateNoise(z.data(), 100, n, 4, key);
  std::vector<float> expected = theta;
  const float coef = 1.5e-3f, decay = 2e-5f, threshold = 0.2f;
  for (int64_t i = 0; i < n; ++i) {
    const float a = expected[i];
    volatile float step = std::fabs(a) < threshold ? coef * z[i] : 0.0f;
    volatile float d = decay * a;
    volatile float diff = a - step;
    expected[i] = diff - d;
  }
  UpdateSgd(theta.data(), 100, n, 4, key, coef, decay, threshold);
  EXPECT_EQ(0, std::memcmp(theta.data(), expected.data(), n * sizeof(float)));

  std::vector<float> plus(n), minus(n);
  Perturb(plus.data(), minus.data(), theta.data(), 100, n, 4, key, 1e-3f, threshold);
  for (int64_t i = 0; i < n; ++i) {
    if (std::fabs(theta[i]) >= threshold) {
      ASSERT_EQ(plus[i], theta[i]);
      ASSERT_EQ(minus[i], theta[i]);
    } else {
      volatile float t = 1e-3f * z[i];
      ASSERT_EQ(plus[i], theta[i] + t);
      ASSERT_EQ(minus[i], theta[i] - t);
    }
  }
}

}  // namespace
}  // namespace strata::zo
