// Prefix tuning against the independent PyTorch reference (torch_reference.py's prefix: PEFT's
// past_key_values, tokens at positions num_tokens onwards) for every family: a base checkpoint
// and a PEFT PREFIX_TUNING directory are read by both; logits, loss and the prefix's gradient
// (base frozen) must agree within the tolerances of the base model's parity test. Skips when
// Debian's python3-torch is not installed.
#include <cmath>
#include <cstdlib>
#include <random>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/model/testing/torch_parity.h"
#include "runtime/peft/peft_checkpoint.h"
#include "runtime/peft/prefix_adapters.h"

namespace strata {
namespace {

class PrefixTorchParityTest : public ::testing::TestWithParam<std::tuple<ModelFamily, int>> {};

TEST_P(PrefixTorchParityTest, LogitsLossAndPrefixGradientsMatchPyTorch) {
  std::string why;
  if (!testing_parity::TorchAvailable(&why)) GTEST_SKIP() << "python3-torch is missing: " << why;
  const auto [family, index] = GetParam();
  testing_parity::Case c =
      testing_parity::RandomCase(family, 7000 + 1000 * static_cast<int>(family) + index);
  std::mt19937 rng(static_cast<uint32_t>(c.seed) + 3);
  const int P = 1 + static_cast<int>(rng() % 4);
  c.T = std::min(c.T, c.config.max_seq_len - P);
  auto model = Transformer::Create(c.config);
  ASSERT_TRUE(model.ok()) << model.status();
  Transformer& m = **model;
  m.InitializeParameters(c.seed);
  testing_parity::ScaleParameters(m, c.seed);
  auto prefix = PrefixAdapters::Create(m.layout(), P);
  ASSERT_TRUE(prefix.ok()) << prefix.status();
  (*prefix)->Initialize(c.seed);
  for (float& w : (*prefix)->weights()) w *= 0.5f;
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/prefix_parity_",
                                       static_cast<int>(family), "_", index);
  ASSERT_TRUE(SaveHfCheckpoint(m, dir).ok());
  ASSERT_TRUE(SaveAdapters(**prefix, c.config, dir).ok());
  m.SetAdapters(prefix->get(), /*base_frozen=*/true);

  std::vector<int32_t> tokens, targets;
  testing_parity::RandomBatch(c, rng, &tokens, &targets);
  absl::StatusOr<SafetensorsFile> out =
      testing_parity::RunReference(dir, c.B, c.T, tokens, targets);
  ASSERT_TRUE(out.ok()) << out.status();
  absl::StatusOr<double> logit_error = testing_parity::LogitError(m, *out, tokens, c.B, c.T);
  ASSERT_TRUE(logit_error.ok()) << logit_error.status();
  EXPECT_LE(*logit_error, 2e-5);
  (*prefix)->ZeroGrads();
  absl::StatusOr<float> loss = m.ForwardBackward(tokens, targets, c.B, c.T);
  ASSERT_TRUE(loss.ok()) << loss.status();
  const float ref_loss = testing_parity::ReadOutput(*out, "loss")[0];
  EXPECT_NEAR(*loss, ref_loss, 1e-5 * std::fabs(ref_loss));
  const std::vector<float> ref = testing_parity::ReadOutput(*out, "grad/prompt_embeddings");
  ASSERT_EQ(static_cast<int64_t>(ref.size()), (*prefix)->NumElements());
  const float* g = (*prefix)->grads().data();
  double max_ref = 0, max_diff = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(ref[i])));
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(g[i]) - ref[i]));
  }
  EXPECT_GT(max_ref, 0);
  EXPECT_LE(max_diff, 1e-4 * max_ref + 1e-6) << "max|grad| " << max_ref;
  std::printf("measured %s prefix of %d (T %d): logits %.2e, gradient %.2e x max|grad|\n",
              std::string(ModelFamilyName(family)).c_str(), P, c.T, *logit_error,
              max_diff / max_ref);
  EXPECT_EQ(m.GradientBytes(), 0);
}

INSTANTIATE_TEST_SUITE_P(
    RandomConfigs, PrefixTorchParityTest,
    ::testing::Combine(::testing::Values(ModelFamily::kGpt2, ModelFamily::kLlama, ModelFamily::kOpt,
                                         ModelFamily::kQwen2, ModelFamily::kQwen3,
                                         ModelFamily::kMistral),
                       ::testing::Range(0, 2)),
    [](const ::testing::TestParamInfo<std::tuple<ModelFamily, int>>& info) {
      return absl::StrCat(ModelFamilyName(std::get<0>(info.param)), "_", std::get<1>(info.param));
    });

}  // namespace
}  // namespace strata
