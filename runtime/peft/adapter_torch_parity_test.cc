// Adapters against the independent PyTorch reference for every family: LoRA (torch_reference.py's
// _lora, PEFT's (alpha / r) B A x on each targeted module; targets alternate between each
// family's default, q and v or GPT-2's c_attn, and "all-linear") and a prefix (the reference's
// past_key_values, tokens at positions num_tokens onwards). A base checkpoint and a PEFT adapter
// directory are read by both; logits, loss and every adapter gradient (base frozen) must agree
// within the tolerances of the base model's parity test. Skips when Debian's python3-torch is
// not installed.
#include <cmath>
#include <cstdlib>
#include <memory>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/model/testing/torch_parity.h"
#include "runtime/peft/lora_adapters.h"
#include "runtime/peft/peft_checkpoint.h"
#include "runtime/peft/prefix_adapters.h"

namespace strata {
namespace {

enum class Kind { kLora, kPrefix };

class AdapterTorchParityTest : public ::testing::TestWithParam<std::tuple<Kind, ModelFamily, int>> {
};

TEST_P(AdapterTorchParityTest, LogitsLossAndAdapterGradientsMatchPyTorch) {
  std::string why;
  if (!testing_parity::TorchAvailable(&why)) GTEST_SKIP() << "python3-torch is missing: " << why;
  const auto [kind, family, index] = GetParam();
  const bool lora = kind == Kind::kLora;
  testing_parity::Case c = testing_parity::RandomCase(
      family, (lora ? 5000 : 7000) + 1000 * static_cast<int>(family) + index);
  std::mt19937 rng(static_cast<uint32_t>(c.seed) + (lora ? 2 : 3));
  auto model = Transformer::Create(c.config);
  ASSERT_TRUE(model.ok()) << model.status();
  Transformer& m = **model;
  m.InitializeParameters(c.seed);
  testing_parity::ScaleParameters(m, c.seed);
  std::unique_ptr<TrainableAdapters> adapters;
  std::string what;
  if (lora) {
    LoraConfig config;
    config.r = 1 + static_cast<int>(rng() % 4);
    config.alpha = static_cast<float>(1 + rng() % (2 * config.r));  // Scale in (0, 2].
    config.target_modules =
        index % 2 == 0 ? DefaultLoraTargets(family) : std::vector<std::string>{"all-linear"};
    auto created = LoraAdapters::Create(m.layout(), config);
    ASSERT_TRUE(created.ok()) << created.status();
    (*created)->Initialize(c.seed);
    std::normal_distribution<float> noise(0.0f, 0.3f);
    for (float& w : (*created)->weights()) w += noise(rng);  // B non-zero, A larger.
    what = absl::StrCat("LoRA r=", config.r);
    adapters = *std::move(created);
  } else {
    const int P = 1 + static_cast<int>(rng() % 4);
    c.T = std::min(c.T, c.config.max_seq_len - P);
    auto created = PrefixAdapters::Create(m.layout(), P);
    ASSERT_TRUE(created.ok()) << created.status();
    (*created)->Initialize(c.seed);
    for (float& w : (*created)->weights()) w *= 0.5f;
    what = absl::StrCat("prefix of ", P, " (T ", c.T, ")");
    adapters = *std::move(created);
  }
  const std::string dir =
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/adapter_parity_", static_cast<int>(kind), "_",
                   static_cast<int>(family), "_", index);
  ASSERT_TRUE(SaveHfCheckpoint(m, dir).ok());
  ASSERT_TRUE(SaveAdapters(*adapters, c.config, dir).ok());
  m.SetAdapters(adapters.get(), /*base_frozen=*/true);

  std::vector<int32_t> tokens, targets;
  testing_parity::RandomBatch(c, rng, &tokens, &targets);
  absl::StatusOr<SafetensorsFile> out =
      testing_parity::RunReference(dir, c.B, c.T, tokens, targets);
  ASSERT_TRUE(out.ok()) << out.status();
  absl::StatusOr<double> logit_error = testing_parity::LogitError(m, *out, tokens, c.B, c.T);
  ASSERT_TRUE(logit_error.ok()) << logit_error.status();
  EXPECT_LE(*logit_error, 2e-5);
  adapters->ZeroGrads();
  absl::StatusOr<float> loss = m.ForwardBackward(tokens, targets, c.B, c.T);
  ASSERT_TRUE(loss.ok()) << loss.status();
  const float ref_loss = testing_parity::ReadOutput(*out, "loss")[0];
  EXPECT_NEAR(*loss, ref_loss, 1e-5 * std::fabs(ref_loss));
  // The reference names LoRA gradients by module (PEFT's "base_model.model." prefix removed)
  // and the prefix's as its tensor.
  double worst = 0, largest = 0;
  for (const TensorInfo& t : adapters->tensors()) {
    constexpr absl::string_view kPeftPrefix = "base_model.model.";
    const std::string name =
        absl::StartsWith(t.name, kPeftPrefix) ? t.name.substr(kPeftPrefix.size()) : t.name;
    const std::vector<float> ref = testing_parity::ReadOutput(*out, "grad/" + name);
    ASSERT_EQ(static_cast<int64_t>(ref.size()), t.numel) << t.name;
    const float* g = adapters->grads().data() + t.offset;
    double max_ref = 0, max_diff = 0;
    for (int64_t i = 0; i < t.numel; ++i) {
      max_ref = std::max(max_ref, std::fabs(static_cast<double>(ref[i])));
      max_diff = std::max(max_diff, std::fabs(static_cast<double>(g[i]) - ref[i]));
    }
    EXPECT_LE(max_diff, 1e-4 * max_ref + 1e-6) << t.name << " max|grad| " << max_ref;
    if (max_ref > 1e-5) worst = std::max(worst, max_diff / max_ref);
    largest = std::max(largest, max_ref);
  }
  EXPECT_GT(largest, 0);
  std::printf("measured %s %s: logits %.2e, adapter gradients %.2e x max|grad|\n",
              std::string(ModelFamilyName(family)).c_str(), what.c_str(), *logit_error, worst);
  EXPECT_EQ(m.GradientBytes(), 0);  // The frozen base never allocated gradients.
}

INSTANTIATE_TEST_SUITE_P(
    RandomConfigs, AdapterTorchParityTest,
    ::testing::Combine(::testing::Values(Kind::kLora, Kind::kPrefix),
                       ::testing::Values(ModelFamily::kGpt2, ModelFamily::kLlama, ModelFamily::kOpt,
                                         ModelFamily::kQwen2, ModelFamily::kQwen3,
                                         ModelFamily::kMistral),
                       ::testing::Range(0, 2)),
    [](const ::testing::TestParamInfo<std::tuple<Kind, ModelFamily, int>>& info) {
      return absl::StrCat(std::get<0>(info.param) == Kind::kLora ? "lora_" : "prefix_",
                          ModelFamilyName(std::get<1>(info.param)), "_", std::get<2>(info.param));
    });

}  // namespace
}  // namespace strata
