// LoRA against the independent PyTorch reference (torch_reference.py's _lora, PEFT's
// (alpha / r) B A x on each targeted module) for every family: a base checkpoint and a PEFT
// adapter directory are read by both; logits, loss and every adapter gradient (base frozen)
// must agree within the tolerances of the base model's parity test. Targets alternate between
// each family's default (q and v, GPT-2's c_attn) and "all-linear". Skips when Debian's
// python3-torch is not installed.
#include <cmath>
#include <cstdlib>
#include <random>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/model/testing/torch_parity.h"
#include "runtime/peft/lora_adapters.h"
#include "runtime/peft/peft_checkpoint.h"

namespace strata {
namespace {

class LoraTorchParityTest : public ::testing::TestWithParam<std::tuple<ModelFamily, int>> {};

TEST_P(LoraTorchParityTest, LogitsLossAndAdapterGradientsMatchPyTorch) {
  std::string why;
  if (!testing_parity::TorchAvailable(&why)) GTEST_SKIP() << "python3-torch is missing: " << why;
  const auto [family, index] = GetParam();
  const testing_parity::Case c =
      testing_parity::RandomCase(family, 5000 + 1000 * static_cast<int>(family) + index);
  auto model = Transformer::Create(c.config);
  ASSERT_TRUE(model.ok()) << model.status();
  Transformer& m = **model;
  m.InitializeParameters(c.seed);
  testing_parity::ScaleParameters(m, c.seed);
  std::mt19937 rng(static_cast<uint32_t>(c.seed) + 2);
  LoraConfig config;
  config.r = 1 + static_cast<int>(rng() % 4);
  config.alpha = static_cast<float>(1 + rng() % (2 * config.r));  // Scale in (0, 2].
  config.target_modules =
      index % 2 == 0 ? DefaultLoraTargets(family) : std::vector<std::string>{"all-linear"};
  auto lora = LoraAdapters::Create(m.layout(), config);
  ASSERT_TRUE(lora.ok()) << lora.status();
  (*lora)->Initialize(c.seed);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  for (float& w : (*lora)->weights()) w += noise(rng);  // B non-zero, A larger.
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/lora_parity_",
                                       static_cast<int>(family), "_", index);
  ASSERT_TRUE(SaveHfCheckpoint(m, dir).ok());
  ASSERT_TRUE(SaveLoraAdapter(**lora, c.config, dir).ok());
  m.SetAdapters(lora->get(), /*base_frozen=*/true);

  std::vector<int32_t> tokens, targets;
  testing_parity::RandomBatch(c, rng, &tokens, &targets);
  absl::StatusOr<SafetensorsFile> out =
      testing_parity::RunReference(dir, c.B, c.T, tokens, targets);
  ASSERT_TRUE(out.ok()) << out.status();
  absl::StatusOr<double> logit_error = testing_parity::LogitError(m, *out, tokens, c.B, c.T);
  ASSERT_TRUE(logit_error.ok()) << logit_error.status();
  EXPECT_LE(*logit_error, 2e-5);
  (*lora)->ZeroGrads();
  absl::StatusOr<float> loss = m.ForwardBackward(tokens, targets, c.B, c.T);
  ASSERT_TRUE(loss.ok()) << loss.status();
  const float ref_loss = testing_parity::ReadOutput(*out, "loss")[0];
  EXPECT_NEAR(*loss, ref_loss, 1e-5 * std::fabs(ref_loss));
  double worst = 0;
  for (const TensorInfo& t : (*lora)->tensors()) {
    const std::string module = t.name.substr(sizeof("base_model.model.") - 1);
    const std::vector<float> ref = testing_parity::ReadOutput(*out, "grad/" + module);
    ASSERT_EQ(static_cast<int64_t>(ref.size()), t.numel) << t.name;
    const float* g = (*lora)->grads().data() + t.offset;
    double max_ref = 0, max_diff = 0;
    for (int64_t i = 0; i < t.numel; ++i) {
      max_ref = std::max(max_ref, std::fabs(static_cast<double>(ref[i])));
      max_diff = std::max(max_diff, std::fabs(static_cast<double>(g[i]) - ref[i]));
    }
    EXPECT_LE(max_diff, 1e-4 * max_ref + 1e-6) << t.name << " max|grad| " << max_ref;
    if (max_ref > 1e-5) worst = std::max(worst, max_diff / max_ref);
  }
  std::printf("measured %s LoRA r=%d: adapter gradients %.2e x max|grad|\n",
              std::string(ModelFamilyName(family)).c_str(), config.r, worst);
  EXPECT_EQ(m.GradientBytes(), 0);  // The frozen base never allocated gradients.
}

INSTANTIATE_TEST_SUITE_P(
    RandomConfigs, LoraTorchParityTest,
    ::testing::Combine(::testing::Values(ModelFamily::kGpt2, ModelFamily::kLlama, ModelFamily::kOpt,
                                         ModelFamily::kQwen2, ModelFamily::kQwen3,
                                         ModelFamily::kMistral),
                       ::testing::Range(0, 2)),
    [](const ::testing::TestParamInfo<std::tuple<ModelFamily, int>>& info) {
      return absl::StrCat(ModelFamilyName(std::get<0>(info.param)), "_", std::get<1>(info.param));
    });

}  // namespace
}  // namespace strata
