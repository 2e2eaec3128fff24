// ZeRO data parallelism with real processes over Gloo: stages 0, 1 and 2 give bitwise the same
// weights, stage 3 too where the reduction order allows (two ranks, no clipping) and within
// rounding otherwise; 2 and 4 ranks agree with one process training on the union of their
// batches (within float rounding of the batch mean); model state per rank follows the ZeRO
// formulas.
#include "runtime/dist/zero_adamw.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/dist/zero3.h"
#include "runtime/model/transformer.h"
#include "runtime/testing/forked_ranks.h"
#include "runtime/testing/tiny_models.h"

namespace strata {
namespace {

constexpr int kGlobalBatch = 4, kSeq = 12, kSteps = 6;

std::string Dir(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

// Sequence `index` of step `step`: tokens and next-token targets, the same on every rank.
void Sequence(int step, int index, int vocab, int32_t* tokens, int32_t* targets) {
  std::mt19937 rng(static_cast<uint32_t>(step * 1000 + index));
  std::vector<int32_t> text(kSeq + 1);
  for (int32_t& t : text) t = static_cast<int32_t>(rng() % vocab);
  for (int i = 0; i < kSeq; ++i) {
    tokens[i] = text[i];
    targets[i] = text[i + 1];
  }
}

struct RunSpec {
  int world = 1;
  int stage = 0;
  bool nvme = false;
  float clip = 0.5f;  // Small enough to clip: exercises the global norm.
  bool reload = false;
  bool bf16 = false;  // Stage 3: forward and backward on the bf16 compute copy.
  ModelFamily family = ModelFamily::kGpt2;
};

// Trains rank `rank` of `run`; writes the final weights to `out`. Exit code 0 on success.
int Train(int rank, const RunSpec& run, const std::string& store, const std::string& out,
          const std::string& nvme) {
  const ModelConfig config = testing_models::Tiny(run.family, 2);
  auto model = *Transformer::Create(config);
  model->InitializeParameters(1);
  const int world = run.world;
  GlooOptions gloo;
  gloo.rank = rank;
  gloo.size = world;
  gloo.store_dir = store;
  gloo.timeout = absl::Seconds(20);
  auto comm = CreateGlooCommunicator(gloo);
  if (!comm.ok()) return 2;
  const AdamWConfig adam{0.9f, 0.999f, 1e-8f, 0.1f};
  const int64_t n = model->layout().NumElements();
  const int local = kGlobalBatch / world;
  std::vector<int32_t> tokens(local * kSeq), targets(local * kSeq);
  auto batch = [&](int step) {
    for (int b = 0; b < local; ++b) {  // Rank r takes sequences r, r + world, ...
      Sequence(step, rank + b * world, config.vocab_size, tokens.data() + b * kSeq,
               targets.data() + b * kSeq);
    }
  };
  if (run.stage >= 2) {
    // With `nvme`: weights and state offloaded; with `reload`: the shard is saved half-way and
    // loaded into a new Zero3 with the other placement (memory <-> NVMe).
    auto options = [&](bool offload) {
      Zero3::Options o;
      o.adam = adam;
      o.grad_clip = run.clip;
      o.subgroup_elements = 1024;  // Dozens of sub-groups: the pipeline turns over.
      o.bf16_compute = run.bf16;
      if (offload) {
        o.nvme_paths = {absl::StrCat(nvme.empty() ? store : nvme, "_", offload)};
        o.offload_params = o.offload_state = true;
      }
      return o;
    };
    auto create = [&](bool offload) {
      if (run.stage == 2) {
        Zero3::Options o = options(offload);
        o.offload_params = false;
        return Zero3::CreateReplicated(model->layout(), comm->get(), o, model->params());
      }
      return Zero3::Create(model->layout(), comm->get(), options(offload), model->params());
    };
    auto zero = create(!nvme.empty());
    if (!zero.ok()) return 3;
    if (run.stage == 3) model->ReleaseBlockWeights();
    // Stage 3: (2 + 2 + 12) Ψ / N in fp32 form, 16 bytes per parameter over N ranks (18 with
    // the bf16 compute copy); stage 2: 4 Ψ + 12 Ψ / N. Within 5 %.
    const double formula =
        run.stage == 2 ? 4.0 * n + 12.0 * n / world : (run.bf16 ? 18.0 : 16.0) * n / world;
    if (std::fabs((*zero)->ModelStateBytes() - formula) > 0.05 * formula) return 4;
    if (!nvme.empty() && !run.bf16 && run.stage == 3 &&
        (*zero)->ResidentStateBytes() * 4 != (*zero)->ModelStateBytes()) {
      return 4;
    }
    for (int step = 0; step < kSteps; ++step) {
      if (run.reload && step == kSteps / 2) {
        const std::string shard = absl::StrCat(store, "_shard", rank);
        if (absl::Status saved = (*zero)->SaveShard(shard); !saved.ok()) {
          std::fprintf(stderr, "%s\n", saved.ToString().c_str());
          return 8;
        }
        const int64_t at = (*zero)->step();
        zero->reset();
        zero = create(nvme.empty());
        if (!zero.ok()) return 8;
        if (absl::Status loaded = (*zero)->LoadShard(shard); !loaded.ok()) {
          std::fprintf(stderr, "%s\n", loaded.ToString().c_str());
          return 8;
        }
        (*zero)->set_step(at);
      }
      batch(step);
      if (!model->ForwardBackward(tokens, targets, local, kSeq, zero->get()).ok()) return 5;
      if (!(*zero)->Step(3e-3f).ok()) return 6;
    }
    if (!(*zero)->GatherWeights(model->params()).ok()) return 7;
  } else {
    ZeroAdamW::Options options;
    options.stage = run.stage;
    options.adam = adam;
    options.grad_clip = run.clip;
    if (!nvme.empty()) {
      options.state_nvme_paths = {nvme};
      options.subgroup_elements = 1024;  // Dozens of sub-groups: the pipeline turns over.
    }
    auto zero = ZeroAdamW::Create(model->layout(), comm->get(), options);
    if (!zero.ok()) return 3;
    const int64_t part = (n + world - 1) / world;
    if (nvme.empty() && (*zero)->OptimizerStateBytes() != (run.stage == 0 ? 8 * n : 8 * part)) {
      return 4;
    }
    if (!nvme.empty() && (*zero)->OptimizerStateBytes() != 3 * 8192) return 4;  // Three slots.
    for (int step = 0; step < kSteps; ++step) {
      batch(step);
      model->ZeroGrads();
      if (!model->ForwardBackward(tokens, targets, local, kSeq).ok()) return 5;
      if (!(*zero)->Step(model->params(), model->grads(), 3e-3f).ok()) return 6;
    }
  }
  if (rank == 0) testing_ranks::WriteFloats(out, model->params().data(), n);
  return 0;
}

// Runs the ranks as processes; returns rank 0's weights.
std::vector<float> TrainRanks(const RunSpec& run) {
  static int runs = 0;  // A fresh rendezvous directory for every run.
  const std::string name =
      absl::StrCat(ModelFamilyName(run.family), "_w", run.world, "_s", run.stage, "_", runs++);
  const std::string store = Dir(name + "_store"), out = Dir(name + ".bin");
  testing_ranks::RunForkedRanks(
      run.world,
      [&](int rank) { return Train(rank, run, store, out, run.nvme ? Dir(name + "_nvme") : ""); },
      name);
  return testing_ranks::ReadFloats(out);
}

std::vector<float> TrainRanks(int world, int stage, bool nvme = false) {
  return TrainRanks(RunSpec{world, stage, nvme});
}

double MaxDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double diff = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    diff = std::max(diff, std::fabs(double{a[i]} - b[i]));
  }
  return diff;
}

TEST(ZeroAdamWTest, StagesZeroAndOneAreBitwiseEqual) {
  const std::vector<float> s0 = TrainRanks(2, 0), s1 = TrainRanks(2, 1);
  ASSERT_FALSE(s0.empty());
  EXPECT_EQ(std::memcmp(s0.data(), s1.data(), s0.size() * sizeof(float)), 0);
  const std::vector<float> four0 = TrainRanks(4, 0), four1 = TrainRanks(4, 1);
  EXPECT_EQ(std::memcmp(four0.data(), four1.data(), four0.size() * sizeof(float)), 0);
}

TEST(ZeroAdamWTest, PartitionedGradientStagesMatchTheOthers) {
  // Unclipped, two ranks: every sum is a + b, so stages 2 and 3 are bitwise stage 0 (and one
  // rank's stage 2 or 3 is bitwise one process's stage 0).
  const std::vector<float> s0 = TrainRanks(RunSpec{2, 0, false, 0}),
                           s2 = TrainRanks(RunSpec{2, 2, false, 0}),
                           s3 = TrainRanks(RunSpec{2, 3, false, 0});
  ASSERT_FALSE(s2.empty());
  EXPECT_EQ(std::memcmp(s0.data(), s2.data(), s2.size() * sizeof(float)), 0) << "stage 2";
  EXPECT_EQ(std::memcmp(s2.data(), s3.data(), s2.size() * sizeof(float)), 0) << "stage 3";
  const std::vector<float> one0 = TrainRanks(RunSpec{1, 0, false, 0}),
                           one2 = TrainRanks(RunSpec{1, 2, false, 0}),
                           one3 = TrainRanks(RunSpec{1, 3, false, 0});
  EXPECT_EQ(std::memcmp(one0.data(), one2.data(), one0.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(one0.data(), one3.data(), one0.size() * sizeof(float)), 0);
  // Clipped (the global norm is summed over other partials), and with four ranks (the ring adds
  // a block's buffer in another order than the whole arena's): the same up to rounding.
  const std::vector<float> clipped0 = TrainRanks(2, 0);
  EXPECT_LT(MaxDiff(clipped0, TrainRanks(2, 2)), 1e-6);
  EXPECT_LT(MaxDiff(clipped0, TrainRanks(2, 3)), 1e-6);
  const std::vector<float> four0 = TrainRanks(4, 0);
  EXPECT_LT(MaxDiff(four0, TrainRanks(4, 2)), 1e-5);
  EXPECT_LT(MaxDiff(four0, TrainRanks(4, 3)), 1e-5);
}

// Every family's tensors (biases, q/k norms, OPT's projections and position table outside the
// blocks) are partitioned, gathered and updated alike: unclipped with two ranks, stage 3 is
// bitwise stage 0.
TEST(ZeroAdamWTest, EveryFamilyTrainsTheSameAtStageThree) {
  for (ModelFamily family : testing_models::AllFamilies()) {
    if (family == ModelFamily::kGpt2) continue;  // The tests above.
    RunSpec run{2, 0, false, 0};
    run.family = family;
    const std::vector<float> s0 = TrainRanks(run);
    run.stage = 3;
    const std::vector<float> s3 = TrainRanks(run);
    ASSERT_FALSE(s0.empty()) << ModelFamilyName(family);
    ASSERT_EQ(s0.size(), s3.size());
    EXPECT_EQ(std::memcmp(s0.data(), s3.data(), s0.size() * sizeof(float)), 0)
        << ModelFamilyName(family);
  }
}

TEST(ZeroAdamWTest, Stage3OffloadedToNvmeAndReloadedGivesTheSameWeights) {
  const std::vector<float> memory = TrainRanks(2, 3);
  ASSERT_FALSE(memory.empty());
  const std::vector<float> nvme = TrainRanks(2, 3, true);
  EXPECT_EQ(std::memcmp(memory.data(), nvme.data(), memory.size() * sizeof(float)), 0);
  // Stage 2: the state on NVMe and a reload (the arena rebuilt by all-gather) change nothing.
  const std::vector<float> memory2 = TrainRanks(2, 2);
  EXPECT_EQ(
      std::memcmp(memory2.data(), TrainRanks(2, 2, true).data(), memory2.size() * sizeof(float)),
      0);
  EXPECT_EQ(std::memcmp(memory2.data(), TrainRanks(RunSpec{2, 2, false, 0.5f, true}).data(),
                        memory2.size() * sizeof(float)),
            0);
  // Saved from memory and loaded onto NVMe half-way, and the other way round.
  for (bool offloaded : {false, true}) {
    const std::vector<float> reloaded = TrainRanks(RunSpec{2, 3, offloaded, 0.5f, true});
    EXPECT_EQ(std::memcmp(memory.data(), reloaded.data(), memory.size() * sizeof(float)), 0)
        << "reloaded, started " << (offloaded ? "on NVMe" : "in memory");
  }
}

TEST(ZeroAdamWTest, Stage3Bf16ComputeCopyIsUsedAndPlacementIndependent) {
  RunSpec bf16{2, 3, false, 0.5f, false, true};
  const std::vector<float> memory = TrainRanks(bf16);
  ASSERT_FALSE(memory.empty());
  bf16.nvme = true;  // Masters and state on NVMe; the copy in memory.
  const std::vector<float> nvme = TrainRanks(bf16);
  EXPECT_EQ(std::memcmp(memory.data(), nvme.data(), memory.size() * sizeof(float)), 0);
  bf16.nvme = false;
  bf16.reload = true;  // The copy is rebuilt from the loaded masters.
  const std::vector<float> reloaded = TrainRanks(bf16);
  EXPECT_EQ(std::memcmp(memory.data(), reloaded.data(), memory.size() * sizeof(float)), 0);
  // The kernels computed on bf16 weights: close to fp32 training, not equal to it. (Adam moves
  // a weight by about lr a step whatever the gradient's size, so where gradients are tiny the
  // two runs can part by a few steps' worth: 6 steps x 3e-3.)
  const std::vector<float> fp32 = TrainRanks(2, 3);
  double mean = 0;
  for (size_t i = 0; i < fp32.size(); ++i) mean += std::fabs(double{memory[i]} - fp32[i]);
  mean /= fp32.size();
  const double diff = MaxDiff(memory, fp32);
  EXPECT_GT(diff, 0.0);
  EXPECT_LT(diff, 1.8e-2);
  EXPECT_LT(mean, 1e-3) << "max " << diff;
}

TEST(ZeroAdamWTest, RanksAgreeWithOneProcessOnTheUnionOfTheirBatches) {
  const std::vector<float> one = TrainRanks(1, 0), two = TrainRanks(2, 2), four = TrainRanks(4, 1),
                           four3 = TrainRanks(4, 3);
  ASSERT_EQ(one.size(), two.size());
  ASSERT_EQ(one.size(), four.size());
  EXPECT_LT(MaxDiff(one, four3), 1e-4);
  double max_diff = 0, changed = 0;
  std::vector<float> initial;
  {
    auto model = *Transformer::Create(testing_models::Tiny(ModelFamily::kGpt2, 2));
    model->InitializeParameters(1);
    initial.assign(model->params().begin(), model->params().end());
  }
  for (size_t i = 0; i < one.size(); ++i) {
    max_diff = std::max(
        {max_diff, std::fabs(double{one[i]} - two[i]), std::fabs(double{one[i]} - four[i])});
    changed = std::max(changed, std::fabs(double{one[i]} - initial[i]));
  }
  // Training moved weights by up to ~1e-2; the ranks moved them the same way up to the rounding
  // of the batch mean, which Adam's normalization amplifies for tiny gradients.
  EXPECT_GT(changed, 1e-3);
  EXPECT_LT(max_diff, 1e-4);
}

TEST(ZeroAdamWTest, OptimizerStateOnNvmeGivesTheSameWeights) {
  const std::vector<float> memory1 = TrainRanks(1, 0), nvme1 = TrainRanks(1, 0, true);
  ASSERT_FALSE(memory1.empty());
  EXPECT_EQ(std::memcmp(memory1.data(), nvme1.data(), memory1.size() * sizeof(float)), 0);
  const std::vector<float> memory2 = TrainRanks(2, 1), nvme2 = TrainRanks(2, 1, true);
  EXPECT_EQ(std::memcmp(memory2.data(), nvme2.data(), memory2.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace strata
