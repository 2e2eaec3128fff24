// First-order LoRA across ranks: two processes over Gloo end with the adapters one process gets
// from the union of their batches, with the base byte-for-byte unchanged and no base gradient
// allocated on every rank. (The trainer's LoRA runs are in fo_trainer_test; this binary forks
// before any computation of its own, so its children start with no compute threads to lose.)
#include "runtime/train/adapter_adamw_update.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/dist/communicator.h"
#include "runtime/peft/lora_adapters.h"
#include "runtime/testing/forked_ranks.h"
#include "runtime/testing/tiny_models.h"

namespace strata {
namespace {

constexpr int kGlobalBatch = 4, kSeq = 12, kSteps = 6;

std::string Dir(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

LoraConfig Config() {
  LoraConfig config;
  config.r = 4;
  config.alpha = 8.0f;
  config.target_modules = {"all-linear"};
  return config;
}

std::unique_ptr<Transformer> Model(ModelFamily family) {
  auto model = *Transformer::Create(testing_models::Tiny(family, 2));
  model->InitializeParameters(1);
  return model;
}

void Sequence(int step, int index, int vocab, int32_t* tokens, int32_t* targets) {
  std::mt19937 rng(static_cast<uint32_t>(step * 1000 + index));
  std::vector<int32_t> text(kSeq + 1);
  for (int32_t& t : text) t = static_cast<int32_t>(rng() % vocab);
  for (int i = 0; i < kSeq; ++i) {
    tokens[i] = text[i];
    targets[i] = text[i + 1];
  }
}

// Rank `rank` of `world` trains the adapters on its share of each global batch (sequences rank,
// rank + world, ...); rank 0 writes them to `out`. Exit code 0 on success, 9 if the base moved.
int TrainRank(ModelFamily family, int rank, int world, const std::string& store,
              const std::string& out) {
  auto model = Model(family);
  const std::vector<float> base(model->params().begin(), model->params().end());
  auto lora = LoraAdapters::Create(model->layout(), Config());
  if (!lora.ok()) return 2;
  (*lora)->Initialize(5);
  std::unique_ptr<Communicator> comm;
  if (world > 1) {
    GlooOptions gloo;
    gloo.rank = rank;
    gloo.size = world;
    gloo.store_dir = store;
    gloo.timeout = absl::Seconds(20);
    auto created = CreateGlooCommunicator(gloo);
    if (!created.ok()) return 3;
    comm = *std::move(created);
  }
  AdapterAdamWUpdate update(*model, lora->get(), comm.get(), {0.9f, 0.999f, 1e-8f, 0.1f}, 0.5);
  const int local = kGlobalBatch / world;
  std::vector<int32_t> tokens(local * kSeq), targets(local * kSeq);
  for (int step = 0; step < kSteps; ++step) {
    for (int b = 0; b < local; ++b) {
      Sequence(step, rank + b * world, model->config().vocab_size, tokens.data() + b * kSeq,
               targets.data() + b * kSeq);
    }
    update.BeginStep(*model);
    if (!model->ForwardBackward(tokens, targets, local, kSeq).ok()) return 5;
    if (!update.Step(*model, 3e-3f).ok()) return 6;
  }
  if (model->GradientBytes() != 0) return 8;
  if (std::memcmp(base.data(), model->params().data(), base.size() * sizeof(float)) != 0) return 9;
  if (rank == 0) testing_ranks::WriteFloats(out, (*lora)->weights().data(), (*lora)->NumElements());
  return 0;
}

std::vector<float> TrainRanks(ModelFamily family, int world) {
  const std::string name = absl::StrCat(ModelFamilyName(family), "_lora_w", world);
  const std::string store = Dir(name + "_store"), out = Dir(name + ".bin");
  testing_ranks::RunForkedRanks(
      world, [&](int rank) { return TrainRank(family, rank, world, store, out); }, name);
  return testing_ranks::ReadFloats(out);
}

class FoLoraRanksTest : public ::testing::TestWithParam<ModelFamily> {};

TEST_P(FoLoraRanksTest, TwoRanksMatchOneProcessOnTheUnionOfTheirBatches) {
  const std::vector<float> one = TrainRanks(GetParam(), 1), two = TrainRanks(GetParam(), 2);
  ASSERT_FALSE(one.empty());
  ASSERT_EQ(one.size(), two.size());
  auto model = Model(GetParam());
  auto initial = *LoraAdapters::Create(model->layout(), Config());
  initial->Initialize(5);
  double diff = 0, moved = 0;
  for (size_t i = 0; i < one.size(); ++i) {
    diff = std::max(diff, std::fabs(double{one[i]} - two[i]));
    moved = std::max(moved, std::fabs(double{one[i]} - initial->weights()[i]));
  }
  EXPECT_GT(moved, 1e-3);  // Both A and B trained.
  EXPECT_LT(diff, 1e-4);   // Up to the rounding of the batch mean.
}

INSTANTIATE_TEST_SUITE_P(Families, FoLoraRanksTest,
                         ::testing::Values(ModelFamily::kGpt2, ModelFamily::kQwen3),
                         [](const auto& info) { return std::string(ModelFamilyName(info.param)); });

}  // namespace
}  // namespace strata
