// Offloaded ZO on the NVMe tier against in-memory ZO: same seeds and batches give bitwise the
// same scalars every step, the same streamed evaluation loss and bitwise the same weights after
// Flush + Materialize, for both model families, several variants, both I/O engines and the
// host-memory tier; the model's block pages are released.
#include "runtime/offload/offloaded_zo.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/peft/lora_adapters.h"
#include "runtime/peft/prefix_adapters.h"
#include "runtime/peft/zo_adapters.h"
#include "runtime/testing/tiny_models.h"
#include "storage/safetensors/safetensors.h"

namespace strata {
namespace {

using testing_models::Tiny;

struct Case {
  std::string name;
  ModelFamily family;
  zo::ZoConfig zo;
  bool uring;
  OffloadedZo::Tier tier = OffloadedZo::Tier::kNvme;
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (ModelFamily family : {ModelFamily::kGpt2, ModelFamily::kLlama}) {
    for (bool uring : {true, false}) {
      zo::ZoConfig c;
      c.seed = 5;
      c.weight_decay = 0.01f;
      const std::string prefix =
          absl::StrCat(ModelFamilyName(family), uring ? "_uring_" : "_threads_");
      cases.push_back({prefix + "sgd", family, c, uring});
      zo::ZoConfig q2 = c;
      q2.num_perturbations = 2;
      q2.variant = zo::ZoVariant::kSign;
      cases.push_back({prefix + "sign_q2", family, q2, uring});
      zo::ZoConfig sparse = c;
      sparse.sparse_quantile = 0.5f;
      sparse.one_sided = true;
      cases.push_back({prefix + "sparse_one_sided", family, sparse, uring});
    }
    // The host-memory tier runs the same pipeline without I/O.
    zo::ZoConfig c;
    c.seed = 5;
    c.weight_decay = 0.01f;
    c.num_perturbations = 2;
    const std::string prefix = absl::StrCat(ModelFamilyName(family), "_cpu_tier_");
    cases.push_back({prefix + "sgd_q2", family, c, false, OffloadedZo::Tier::kCpu});
    c.num_perturbations = 1;
    c.sparse_quantile = 0.5f;
    c.one_sided = true;
    cases.push_back({prefix + "sparse_one_sided", family, c, false, OffloadedZo::Tier::kCpu});
  }
  // The other families through the NVMe pipeline: their block layouts (biases, q/k norms,
  // explicit head_dim), windows and OPT's projections outside the blocks.
  for (ModelFamily family : testing_models::AllFamilies()) {
    if (family == ModelFamily::kGpt2 || family == ModelFamily::kLlama) continue;
    zo::ZoConfig c;
    c.seed = 5;
    c.weight_decay = 0.01f;
    cases.push_back({absl::StrCat(ModelFamilyName(family), "_uring_sgd"), family, c, true});
    c.num_perturbations = 2;
    c.variant = zo::ZoVariant::kSign;
    cases.push_back({absl::StrCat(ModelFamilyName(family), "_threads_sign_q2"), family, c, false});
  }
  return cases;
}

class OffloadedZoTest : public ::testing::TestWithParam<Case> {};

TEST_P(OffloadedZoTest, BitwiseEqualToInMemoryZo) {
  const Case& c = GetParam();
  auto reference = *Transformer::Create(Tiny(c.family));
  auto offloaded = *Transformer::Create(Tiny(c.family));
  reference->InitializeParameters(3);
  offloaded->InitializeParameters(3);
  auto in_memory = zo::ZoOptimizer::Create(reference.get(), c.zo);
  ASSERT_TRUE(in_memory.ok());
  OffloadedZo::Options options;
  const char* tmp = std::getenv("TEST_TMPDIR");
  options.nvme_paths = {absl::StrCat(tmp ? tmp : "/tmp", "/nvme_", c.name, "_a"),
                        absl::StrCat(tmp ? tmp : "/tmp", "/nvme_", c.name, "_b")};
  options.prefetch_blocks = 2;
  options.io.use_io_uring = c.uring;
  options.tier = c.tier;
  auto offload = OffloadedZo::Create(offloaded.get(), c.zo, options);
  ASSERT_TRUE(offload.ok()) << offload.status();
  std::mt19937 rng(8);
  const int B = 2, T = 9;
  for (int64_t step = 1; step <= 4; ++step) {
    std::vector<int32_t> tokens(B * T), targets(B * T);
    for (auto& t : tokens) t = static_cast<int32_t>(rng() % 53);
    for (auto& t : targets) t = static_cast<int32_t>(rng() % 53);
    auto a = (*in_memory)->Step(tokens, targets, B, T, step, 2e-3);
    auto b = (*offload)->Step(tokens, targets, B, T, step, 2e-3);
    ASSERT_TRUE(a.ok() && b.ok()) << b.status();
    EXPECT_EQ(a->scalars, b->scalars) << "step " << step;
    EXPECT_EQ(a->seed, b->seed);
  }
  (*in_memory)->Flush();
  // Streamed evaluation (pending update applied, then read-only) equals the in-memory loss.
  std::vector<int32_t> eval_tokens(B * T), eval_targets(B * T);
  for (auto& t : eval_tokens) t = static_cast<int32_t>(rng() % 53);
  for (auto& t : eval_targets) t = static_cast<int32_t>(rng() % 53);
  const float reference_loss = *reference->Loss(eval_tokens, eval_targets, B, T);
  for (int pass = 0; pass < 2; ++pass) {
    const int64_t written = (*offload)->bytes_written();
    absl::StatusOr<float> streamed = (*offload)->Loss(eval_tokens, eval_targets, B, T);
    ASSERT_TRUE(streamed.ok()) << streamed.status();
    EXPECT_EQ(*streamed, reference_loss);
    if (pass == 1) {
      EXPECT_EQ((*offload)->bytes_written(), written) << "evaluation wrote blocks";
    }
  }
  // A checkpoint written block by block from NVMe holds the in-memory weights.
  HfSaveOptions save;
  save.block_source = [&](int layer) { return (*offload)->ReadBlock(layer); };
  const std::string ckpt = absl::StrCat(tmp ? tmp : "/tmp", "/ckpt_", c.name);
  ASSERT_TRUE(SaveHfCheckpoint(*offloaded, ckpt, save).ok());
  auto saved = LoadHfCheckpoint(ckpt);
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_EQ(0, std::memcmp(reference->params().data(), (*saved)->params().data(),
                           reference->params().size() * sizeof(float)));
  ASSERT_TRUE((*offload)->Materialize().ok());
  EXPECT_EQ(0, std::memcmp(reference->params().data(), offloaded->params().data(),
                           reference->params().size() * sizeof(float)));
  // Each pass reads every block once; the first pass of a step writes the updated blocks back.
  if (c.tier == OffloadedZo::Tier::kNvme) {
    EXPECT_GT((*offload)->bytes_read(), 0);
    EXPECT_GT((*offload)->bytes_written(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, OffloadedZoTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

// ZO-LoRA over an offloaded base (NVMe with both I/O engines, and the host tier): the same
// scalars and adapter bits as ZO-LoRA in memory, every family, with the base streamed read-only
// (nothing written after construction, one read of every block per perturbation pass) and
// unchanged.
struct LoraCase {
  ModelFamily family;
  bool uring;
  OffloadedZo::Tier tier;
};

class OffloadedZoAdaptersTest : public ::testing::TestWithParam<LoraCase> {};

TEST_P(OffloadedZoAdaptersTest, MatchesInMemoryZoAdaptersAndNeverWritesTheBase) {
  const LoraCase& c = GetParam();
  auto reference = *Transformer::Create(Tiny(c.family));
  auto offloaded = *Transformer::Create(Tiny(c.family));
  reference->InitializeParameters(3);
  LoraConfig lora_config;
  lora_config.r = 2;
  lora_config.target_modules = {"all-linear"};
  auto reference_lora = *LoraAdapters::Create(reference->layout(), lora_config);
  auto offloaded_lora = *LoraAdapters::Create(offloaded->layout(), lora_config);
  reference_lora->Initialize(4);
  offloaded_lora->Initialize(4);
  zo::ZoConfig config;
  config.seed = 5;
  config.eps = 1e-2f;
  config.num_perturbations = 2;
  auto in_memory = ZoAdapters::Create(reference.get(), reference_lora.get(), config);
  ASSERT_TRUE(in_memory.ok()) << in_memory.status();
  OffloadedZo::Options options;
  const std::string name =
      absl::StrCat(ModelFamilyName(c.family), c.uring, static_cast<int>(c.tier));
  options.nvme_paths = {absl::StrCat(std::getenv("TEST_TMPDIR"), "/lora_", name)};
  options.io.use_io_uring = c.uring;
  options.tier = c.tier;
  options.init_seed = 3;  // The base built in place: it never occupies the model's arena.
  options.adapters = offloaded_lora.get();
  auto offload = OffloadedZo::Create(offloaded.get(), config, options);
  ASSERT_TRUE(offload.ok()) << offload.status();
  EXPECT_EQ((*offload)->arithmetic(), nullptr);
  const int64_t written = (*offload)->bytes_written(), read = (*offload)->bytes_read();
  std::mt19937 rng(8);
  const int B = 2, T = 9, kSteps = 3;
  for (int64_t step = 1; step <= kSteps; ++step) {
    std::vector<int32_t> tokens(B * T), targets(B * T);
    for (auto& t : tokens) t = static_cast<int32_t>(rng() % 53);
    for (auto& t : targets) t = static_cast<int32_t>(rng() % 53);
    auto a = (*in_memory)->Step(tokens, targets, B, T, step, 5e-2);
    auto b = (*offload)->Step(tokens, targets, B, T, step, 5e-2);
    ASSERT_TRUE(a.ok() && b.ok()) << b.status();
    EXPECT_EQ(a->scalars, b->scalars) << "step " << step;
  }
  EXPECT_EQ(0, std::memcmp(reference_lora->weights().data(), offloaded_lora->weights().data(),
                           reference_lora->NumElements() * sizeof(float)));
  const int64_t step_reads = (*offload)->bytes_read() - read;
  std::vector<int32_t> tokens(B * T), targets(B * T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % 53);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % 53);
  absl::StatusOr<float> streamed = (*offload)->Loss(tokens, targets, B, T);
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  EXPECT_EQ(*streamed, *reference->Loss(tokens, targets, B, T));
  if (c.tier == OffloadedZo::Tier::kNvme) {
    const int64_t pass = (*offload)->bytes_read() - read - step_reads;  // One read of each block.
    EXPECT_GT(pass, 0);
    EXPECT_EQ(step_reads, kSteps * config.num_perturbations * pass);
    EXPECT_EQ((*offload)->bytes_written(), written) << "a frozen block was written back";
  }
  ASSERT_TRUE((*offload)->Materialize().ok());
  EXPECT_EQ(0, std::memcmp(reference->params().data(), offloaded->params().data(),
                           reference->params().size() * sizeof(float)))
      << "the base changed";
}

std::vector<LoraCase> LoraCases() {
  std::vector<LoraCase> cases;
  for (ModelFamily family : testing_models::AllFamilies()) {
    cases.push_back({family, true, OffloadedZo::Tier::kNvme});
  }
  cases.push_back({ModelFamily::kLlama, false, OffloadedZo::Tier::kNvme});
  cases.push_back({ModelFamily::kQwen3, false, OffloadedZo::Tier::kCpu});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Families, OffloadedZoAdaptersTest, ::testing::ValuesIn(LoraCases()),
                         [](const ::testing::TestParamInfo<LoraCase>& info) {
                           return absl::StrCat(
                               ModelFamilyName(info.param.family),
                               info.param.uring ? "_uring" : "_threads",
                               info.param.tier == OffloadedZo::Tier::kCpu ? "_cpu_tier" : "");
                         });

// A prefix over an offloaded base: the same scalars and prefix bits as in memory, nothing
// written back, the streamed loss equal to the in-memory one (windows shorter than the prefix
// plus the tokens on Mistral).
TEST(OffloadedZoTest, APrefixOverTheOffloadedBaseMatchesInMemory) {
  for (ModelFamily family : {ModelFamily::kMistral, ModelFamily::kOpt}) {
    auto reference = *Transformer::Create(Tiny(family));
    auto offloaded = *Transformer::Create(Tiny(family));
    reference->InitializeParameters(3);
    auto reference_prefix = *PrefixAdapters::Create(reference->layout(), 3);
    auto offloaded_prefix = *PrefixAdapters::Create(offloaded->layout(), 3);
    reference_prefix->Initialize(4);
    offloaded_prefix->Initialize(4);
    zo::ZoConfig config;
    config.seed = 5;
    config.eps = 1e-1f;
    auto in_memory = *ZoAdapters::Create(reference.get(), reference_prefix.get(), config);
    OffloadedZo::Options options;
    options.nvme_paths = {
        absl::StrCat(std::getenv("TEST_TMPDIR"), "/prefix_", ModelFamilyName(family))};
    options.init_seed = 3;
    options.adapters = offloaded_prefix.get();
    auto offload = OffloadedZo::Create(offloaded.get(), config, options);
    ASSERT_TRUE(offload.ok()) << offload.status();
    const int64_t written = (*offload)->bytes_written();
    std::mt19937 rng(8);
    const int B = 2, T = 9;
    std::vector<int32_t> tokens(B * T), targets(B * T);
    for (int64_t step = 1; step <= 3; ++step) {
      for (auto& t : tokens) t = static_cast<int32_t>(rng() % 53);
      for (auto& t : targets) t = static_cast<int32_t>(rng() % 53);
      auto a = in_memory->Step(tokens, targets, B, T, step, 1e-2);
      auto b = (*offload)->Step(tokens, targets, B, T, step, 1e-2);
      ASSERT_TRUE(a.ok() && b.ok()) << b.status();
      EXPECT_EQ(a->scalars, b->scalars) << ModelFamilyName(family) << " step " << step;
    }
    EXPECT_EQ(0, std::memcmp(reference_prefix->weights().data(), offloaded_prefix->weights().data(),
                             reference_prefix->NumElements() * sizeof(float)));
    EXPECT_EQ((*offload)->bytes_written(), written);
    absl::StatusOr<float> streamed = (*offload)->Loss(tokens, targets, B, T);
    ASSERT_TRUE(streamed.ok()) << streamed.status();
    EXPECT_EQ(*streamed, *reference->Loss(tokens, targets, B, T));
  }
}

TEST(OffloadedZoTest, StreamingInitializationMatchesInitializingInMemory) {
  auto a = *Transformer::Create(Tiny(ModelFamily::kLlama));
  auto b = *Transformer::Create(Tiny(ModelFamily::kLlama));
  a->InitializeParameters(9);
  const char* tmp = std::getenv("TEST_TMPDIR");
  OffloadedZo::Options options;
  options.nvme_paths = {absl::StrCat(tmp ? tmp : "/tmp", "/nvme_stream_init")};
  options.init_seed = 9;
  auto offload = OffloadedZo::Create(b.get(), zo::ZoConfig(), options);
  ASSERT_TRUE(offload.ok()) << offload.status();
  ASSERT_TRUE((*offload)->Materialize().ok());
  EXPECT_EQ(
      0, std::memcmp(a->params().data(), b->params().data(), a->params().size() * sizeof(float)));
}

TEST(OffloadedZoTest, BudgetShrinksReadAheadAndRefusesWhatCannotFit) {
  auto model = *Transformer::Create(Tiny(ModelFamily::kGpt2));
  const ParamLayout& layout = model->layout();
  const int64_t block = layout.BlockElements() * 4;
  const int64_t resident = (layout.NumElements() - (layout.BlockEnd(4) - layout.BlockBegin(0))) * 4;
  const char* tmp = std::getenv("TEST_TMPDIR");
  OffloadedZo::Options options;
  options.nvme_paths = {absl::StrCat(tmp ? tmp : "/tmp", "/nvme_budget")};
  options.init_seed = 1;
  options.prefetch_blocks = 3;
  options.memory_budget_bytes = 3 * resident + 2 * TensorStore::Padded(block) + 2 * block;
  auto fits = OffloadedZo::Create(model.get(), zo::ZoConfig(), options);
  ASSERT_TRUE(fits.ok()) << fits.status();
  EXPECT_EQ((*fits)->slots(), 2);
  EXPECT_LE((*fits)->working_set_bytes(), options.memory_budget_bytes);
  options.memory_budget_bytes = 3 * resident + 2 * block;
  absl::Status status = OffloadedZo::Create(model.get(), zo::ZoConfig(), options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(status.message().find("cannot hold the resident tensors"), std::string::npos);
}

// Fraction of block weights that differ between two arenas.
double ChangedFraction(const Transformer& a, const Transformer& b) {
  const ParamLayout& layout = a.layout();
  const int64_t begin = layout.BlockBegin(0), end = layout.BlockEnd(layout.config().n_layer - 1);
  int64_t changed = 0;
  for (int64_t i = begin; i < end; ++i) changed += a.params()[i] != b.params()[i];
  return static_cast<double>(changed) / static_cast<double>(end - begin);
}

TEST(OffloadedZoTest, Bf16StorageRoundsWeightsAndSmallUpdatesRoundAway) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  auto initial = *Transformer::Create(Tiny(ModelFamily::kLlama));
  initial->InitializeParameters(4);
  // The stored weights are the bf16 roundings of the initial ones.
  auto rounded = *Transformer::Create(Tiny(ModelFamily::kLlama));
  OffloadedZo::Options options;
  options.nvme_paths = {absl::StrCat(tmp ? tmp : "/tmp", "/nvme_bf16_a")};
  options.bf16_storage = true;
  options.init_seed = 4;
  auto store = OffloadedZo::Create(rounded.get(), zo::ZoConfig(), options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Materialize().ok());
  const ParamLayout& layout = initial->layout();
  for (int64_t i = layout.BlockBegin(0); i < layout.BlockEnd(4); i += 37) {
    ASSERT_EQ(rounded->params()[i], Bf16ToFloat(FloatToBf16(initial->params()[i])));
  }
  for (int l = 0; l < 5; ++l) {  // ReadBlock widens the stored block like Materialize does.
    absl::StatusOr<const float*> block = (*store)->ReadBlock(l);
    ASSERT_TRUE(block.ok()) << block.status();
    EXPECT_EQ(0, std::memcmp(*block, rounded->params().data() + layout.BlockBegin(l),
                             layout.BlockElements() * sizeof(float)));
  }
  EXPECT_EQ((*store)->ReadBlock(5).status().code(), absl::StatusCode::kOutOfRange);
  // One step at a small and a large learning rate, fp32 vs bf16 storage.
  std::vector<int32_t> tokens(18), targets(18);
  for (int i = 0; i < 18; ++i) {
    tokens[i] = (i * 5) % 53;
    targets[i] = (i * 7 + 1) % 53;
  }
  for (double lr : {1e-6, 1e-2}) {
    double fraction[2];
    for (bool bf16 : {false, true}) {
      auto model = *Transformer::Create(Tiny(ModelFamily::kLlama));
      auto before = *Transformer::Create(Tiny(ModelFamily::kLlama));
      OffloadedZo::Options o;
      o.nvme_paths = {absl::StrCat(tmp ? tmp : "/tmp", "/nvme_bf16_", bf16, "_", lr)};
      o.bf16_storage = bf16;
      o.init_seed = 4;
      auto zo = *OffloadedZo::Create(model.get(), zo::ZoConfig(), o);
      ASSERT_TRUE(zo->Materialize().ok());
      std::copy(model->params().begin(), model->params().end(), before->params().begin());
      ASSERT_TRUE(zo->Step(tokens, targets, 2, 9, 1, lr).ok());
      ASSERT_TRUE(zo->Materialize().ok());
      fraction[bf16] = ChangedFraction(*model, *before);
      // The host-memory tier stores and rounds the same way.
      auto host = *Transformer::Create(Tiny(ModelFamily::kLlama));
      o.tier = OffloadedZo::Tier::kCpu;
      auto host_zo = *OffloadedZo::Create(host.get(), zo::ZoConfig(), o);
      ASSERT_TRUE(host_zo->Step(tokens, targets, 2, 9, 1, lr).ok());
      ASSERT_TRUE(host_zo->Materialize().ok());
      EXPECT_EQ(0, std::memcmp(host->params().data(), model->params().data(),
                               model->params().size() * sizeof(float)));
    }
    std::printf("lr %g: block weights changed by one step: fp32 %.4f, bf16 %.4f\n", lr, fraction[0],
                fraction[1]);
    EXPECT_GT(fraction[0], 0.9) << lr;
    if (lr < 1e-4) {
      EXPECT_LT(fraction[1], 0.1) << "tiny updates should round away in bf16";
    } else {
      EXPECT_GT(fraction[1], 0.2);
    }
  }
}

TEST(OffloadedZoOptionsTest, StatefulVariantsAndMissingPathsAreRejected) {
  auto model = *Transformer::Create(Tiny(ModelFamily::kGpt2));
  zo::ZoConfig config;
  config.variant = zo::ZoVariant::kAdam;
  OffloadedZo::Options options;
  options.nvme_paths = {"/tmp"};
  EXPECT_EQ(OffloadedZo::Create(model.get(), config, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(OffloadedZo::Create(model.get(), zo::ZoConfig(), OffloadedZo::Options()).ok());
}

}  // namespace
}  // namespace strata
