// The GPU stage against the CPU: the device's noise, perturbation and SGD update are bitwise the
// CPU kernels'; ZO steps with the blocks on the GPU give the CPU's losses and scalars within
// tolerance (different summation order in the forward), and the weights they leave are bitwise
// what a CPU replay of their step log gives — in memory and through OffloadedZo's NVMe tier with
// the slots as the source of the device copies. Skipped where the build has no CUDA or the
// machine no GPU.
#include "runtime/offload/gpu/gpu_block_executor.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/cuda/cuda_runtime.h"
#include "runtime/offload/offloaded_zo.h"
#include "runtime/testing/tiny_models.h"
#include "runtime/zo/zo_kernels.h"
#ifdef STRATA_WITH_CUDA
#include "runtime/offload/gpu/gpu_kernels.h"
#endif

namespace strata {
namespace {

// Why this test cannot run here, or empty when a GPU is usable.
std::string NoGpuReason() {
  if (!CudaBuilt()) return "built without CUDA (bazel test --config=cuda)";
  absl::StatusOr<int> devices = CudaDeviceCount();
  if (!devices.ok()) return std::string(devices.status().message());
  if (*devices == 0) return "no CUDA device";
  return "";
}

#define SKIP_WITHOUT_GPU()                                     \
  do {                                                         \
    if (const std::string why = NoGpuReason(); !why.empty()) { \
      GTEST_SKIP() << "needs a CUDA GPU: " << why;             \
    }                                                          \
  } while (0)

TEST(GpuZoKernelsTest, NoisePerturbationAndUpdateAreBitwiseTheCpus) {
  SKIP_WITHOUT_GPU();
#ifdef STRATA_WITH_CUDA
  const int64_t n = 10007;  // Not a multiple of 4: the last Philox block is partial.
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> theta(n);
  for (float& t : theta) t = normal(rng);
  theta[5] = 0.7f;  // Above the threshold below: neither perturbed nor updated.
  float *d_theta = nullptr, *d_plus = nullptr, *d_minus = nullptr;
  ASSERT_EQ(gpu::Malloc(&d_theta, n), 0);
  ASSERT_EQ(gpu::Malloc(&d_plus, n), 0);
  ASSERT_EQ(gpu::Malloc(&d_minus, n), 0);
  gpu::Stream s = nullptr;
  ASSERT_EQ(gpu::StreamCreate(&s), 0);
  for (zo::Distribution dist : {zo::Distribution::kGaussian, zo::Distribution::kRademacher}) {
    const bool rademacher = dist == zo::Distribution::kRademacher;
    const zo::NoiseKey key{0x1234567890ABCDEFull, 2, dist};
    std::vector<float> cpu(n), got(n), cpu_minus(n), got_minus(n);
    zo::GenerateNoise(cpu.data(), 0, n, 9, key);
    ASSERT_EQ(gpu::ZoNoise(s, d_plus, n, 9, key.seed, key.stream, rademacher), 0);
    ASSERT_EQ(gpu::CopyToHost(got.data(), d_plus, n, s), 0);
    ASSERT_EQ(gpu::StreamSynchronize(s), 0);
    EXPECT_EQ(std::memcmp(cpu.data(), got.data(), n * sizeof(float)), 0) << "noise";

    zo::Perturb(cpu.data(), cpu_minus.data(), theta.data(), 0, n, 9, key, 1e-3f, 0.5f);
    ASSERT_EQ(gpu::CopyToDevice(d_theta, theta.data(), n, s), 0);
    ASSERT_EQ(gpu::ZoPerturb(s, d_plus, d_minus, d_theta, n, 9, key.seed, key.stream, rademacher,
                             1e-3f, 0.5f),
              0);
    ASSERT_EQ(gpu::CopyToHost(got.data(), d_plus, n, s), 0);
    ASSERT_EQ(gpu::CopyToHost(got_minus.data(), d_minus, n, s), 0);
    ASSERT_EQ(gpu::StreamSynchronize(s), 0);
    EXPECT_EQ(std::memcmp(cpu.data(), got.data(), n * sizeof(float)), 0) << "plus";
    EXPECT_EQ(std::memcmp(cpu_minus.data(), got_minus.data(), n * sizeof(float)), 0) << "minus";
    EXPECT_EQ(got[5], 0.7f);

    std::vector<float> updated = theta;
    zo::UpdateSgd(updated.data(), 0, n, 9, key, 3.7e-4f, 1e-5f, 0.5f);
    ASSERT_EQ(
        gpu::ZoUpdateSgd(s, d_theta, n, 9, key.seed, key.stream, rademacher, 3.7e-4f, 1e-5f, 0.5f),
        0);
    ASSERT_EQ(gpu::CopyToHost(got.data(), d_theta, n, s), 0);
    ASSERT_EQ(gpu::StreamSynchronize(s), 0);
    EXPECT_EQ(std::memcmp(updated.data(), got.data(), n * sizeof(float)), 0) << "update";
  }
  gpu::StreamDestroy(s);
  gpu::Free(d_theta);
  gpu::Free(d_plus);
  gpu::Free(d_minus);
#endif
}

ModelConfig Tiny(ModelFamily family) { return testing_models::Tiny(family, 4); }

struct Batch {
  int B = 2, T = 12;
  std::vector<int32_t> tokens, targets;
};

Batch MakeBatch(int vocab, uint32_t seed) {
  Batch b;
  std::mt19937 rng(seed);
  for (int i = 0; i < b.B * b.T; ++i) {
    b.tokens.push_back(static_cast<int32_t>(rng() % vocab));
    b.targets.push_back(static_cast<int32_t>(rng() % vocab));
  }
  return b;
}

zo::ZoConfig Config() {
  zo::ZoConfig c;
  c.seed = 11;
  c.eps = 1e-2f;  // Large enough that the forward's rounding differences stay small in g.
  c.weight_decay = 0.01f;
  c.num_perturbations = 2;
  return c;
}

// The arena's blocks, for running ZoOptimizer::Step with an executor in memory.
zo::ZoOptimizer::BlockStream ArenaBlocks(Transformer* model) {
  return [model](const zo::ZoOptimizer::BlockVisitor& fn) -> absl::Status {
    for (int l = 0; l < model->config().n_layer; ++l) {
      absl::StatusOr<bool> r = fn(l, model->params().data() + model->layout().BlockBegin(l));
      if (!r.ok()) return r.status();
    }
    return absl::OkStatus();
  };
}

// Checks a GPU run's records against the CPU: losses and scalars close to an in-memory CPU run
// on the same batches, and `weights` bitwise equal to replaying the records on the CPU.
void ExpectMatchesCpu(ModelFamily family, const std::vector<zo::ZoStepRecord>& gpu_records,
                      absl::Span<const float> weights) {
  auto cpu_model = *Transformer::Create(Tiny(family));
  cpu_model->InitializeParameters(4);
  auto cpu = *zo::ZoOptimizer::Create(cpu_model.get(), Config());
  for (size_t i = 0; i < gpu_records.size(); ++i) {
    const Batch b = MakeBatch(53, static_cast<uint32_t>(100 + i));
    auto r = cpu->Step(b.tokens, b.targets, b.B, b.T, static_cast<int64_t>(i + 1), 1e-2);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_NEAR(gpu_records[i].loss, r->loss, 1e-4 * std::fabs(r->loss)) << "step " << i + 1;
    for (size_t q = 0; q < r->scalars.size(); ++q) {
      EXPECT_NEAR(gpu_records[i].scalars[q], r->scalars[q], 0.02 * std::fabs(r->scalars[q]) + 2e-3)
          << "step " << i + 1 << " perturbation " << q;
    }
  }
  auto replay_model = *Transformer::Create(Tiny(family));
  replay_model->InitializeParameters(4);
  auto replay = *zo::ZoOptimizer::Create(replay_model.get(), Config());
  for (const zo::ZoStepRecord& r : gpu_records) ASSERT_TRUE(replay->Replay(r).ok());
  ASSERT_EQ(weights.size(), replay_model->params().size());
  EXPECT_EQ(std::memcmp(weights.data(), replay_model->params().data(), weights.size() * 4), 0)
      << "GPU-updated weights differ from the CPU replay of the same step log";
}

class GpuBlockExecutorTest : public ::testing::TestWithParam<ModelFamily> {};

TEST_P(GpuBlockExecutorTest, InMemoryStepsMatchTheCpuAndReplayBitwise) {
  SKIP_WITHOUT_GPU();
  auto model = *Transformer::Create(Tiny(GetParam()));
  model->InitializeParameters(4);
  auto zo = *zo::ZoOptimizer::Create(model.get(), Config());
  GpuBlockExecutorOptions options;
  options.eps = Config().eps;
  options.thresholds = zo->thresholds();
  auto executor = CreateGpuBlockExecutor(model->layout(), options);
  ASSERT_TRUE(executor.ok()) << executor.status();
  std::vector<zo::ZoStepRecord> records;
  for (int step = 1; step <= 4; ++step) {
    const Batch b = MakeBatch(53, static_cast<uint32_t>(99 + step));
    auto r = zo->Step(b.tokens, b.targets, b.B, b.T, step, 1e-2, ArenaBlocks(model.get()),
                      executor->get());
    ASSERT_TRUE(r.ok()) << r.status();
    records.push_back(*r);
  }
  zo->Flush();
  ExpectMatchesCpu(GetParam(), records, model->params());
}

TEST_P(GpuBlockExecutorTest, OffloadedNvmeTierOnTheGpu) {
  SKIP_WITHOUT_GPU();
  auto model = *Transformer::Create(Tiny(GetParam()));
  model->InitializeParameters(4);
  OffloadedZo::Options options;
  options.nvme_paths = {
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/gpu-", ModelFamilyName(GetParam()))};
  options.gpu_device = 0;
  auto offload = OffloadedZo::Create(model.get(), Config(), options);
  ASSERT_TRUE(offload.ok()) << offload.status();
  std::vector<zo::ZoStepRecord> records;
  for (int step = 1; step <= 4; ++step) {
    const Batch b = MakeBatch(53, static_cast<uint32_t>(99 + step));
    auto r = (*offload)->Step(b.tokens, b.targets, b.B, b.T, step, 1e-2);
    ASSERT_TRUE(r.ok()) << r.status();
    records.push_back(*r);
  }
  ASSERT_TRUE((*offload)->Materialize().ok());
  ExpectMatchesCpu(GetParam(), records, model->params());
}

TEST(GpuBlockExecutorStubTest, UnavailableWithoutCudaSaysHowToGetIt) {
  if (CudaBuilt()) GTEST_SKIP() << "this build has CUDA";
  auto model = *Transformer::Create(Tiny(ModelFamily::kGpt2));
  GpuBlockExecutorOptions options;
  options.thresholds.assign(model->layout().tensors().size(), zo::kNoMask);
  auto executor = CreateGpuBlockExecutor(model->layout(), options);
  ASSERT_FALSE(executor.ok());
  EXPECT_EQ(executor.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(executor.status().message().find("--config=cuda"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Families, GpuBlockExecutorTest,
                         ::testing::ValuesIn(testing_models::AllFamilies()),
                         [](const ::testing::TestParamInfo<ModelFamily>& info) {
                           return std::string(ModelFamilyName(info.param));
                         });

}  // namespace
}  // namespace strata
