// LoRA adapters on every family: adapter gradients against finite differences with the base
// frozen (and no base gradient computed), the adapted model equal to the merged one, PEFT
// directories round-tripping bitwise, ZO-LoRA's scalar and bitwise replay with the base
// untouched, targets matched as PEFT matches them, and bad configs refused by name.
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/peft/lora_adapters.h"
#include "runtime/peft/lora_config.h"
#include "runtime/peft/peft_checkpoint.h"
#include "runtime/peft/zo_adapters.h"
#include "runtime/testing/tiny_models.h"
#include "runtime/zo/zo_kernels.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

struct Batch {
  int B = 2, T = 7;
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

std::unique_ptr<Transformer> Model(ModelFamily family) {
  auto model = *Transformer::Create(testing_models::Tiny(family, 2));
  model->InitializeParameters(3);
  for (float& p : model->params()) p *= 8.0f;  // Every path carries signal.
  for (const TensorInfo& t : model->layout().tensors()) {
    if (t.role == TensorRole::kNorm) {
      for (int64_t i = 0; i < t.numel; ++i) model->params()[t.offset + i] = 1.0f + 0.1f * (i % 5);
    }
  }
  return model;
}

// Adapters with B non-zero (after PEFT's init B is zero and the adapters do nothing yet).
std::unique_ptr<LoraAdapters> Adapters(const Transformer& model, std::vector<std::string> targets,
                                       uint64_t seed) {
  LoraConfig config;
  config.r = 3;
  config.alpha = 6.0f;
  config.target_modules = std::move(targets);
  auto lora = *LoraAdapters::Create(model.layout(), config);
  lora->Initialize(seed);
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> noise(0.0f, 0.3f);
  for (const TensorInfo& t : lora->tensors()) {
    if (t.name.find("lora_B") == std::string::npos) continue;
    for (int64_t i = 0; i < t.numel; ++i) lora->weights()[t.offset + i] = noise(rng);
  }
  return lora;
}

class LoraTest : public ::testing::TestWithParam<ModelFamily> {};

TEST_P(LoraTest, AdapterGradientsMatchFiniteDifferencesWithTheBaseFrozen) {
  auto model = Model(GetParam());
  auto lora = Adapters(*model, {"all-linear"}, 9);
  model->SetAdapters(lora.get(), /*base_frozen=*/true);
  const Batch b = MakeBatch(model->config().vocab_size, 4);
  lora->ZeroGrads();
  absl::StatusOr<float> loss = model->ForwardBackward(b.tokens, b.targets, b.B, b.T);
  ASSERT_TRUE(loss.ok()) << loss.status();
  const float inference = *model->Loss(b.tokens, b.targets, b.B, b.T);  // Both paths adapt.
  EXPECT_NEAR(*loss, inference, 1e-5 * std::fabs(inference));
  const std::vector<float> grads(lora->grads().begin(), lora->grads().end());
  std::mt19937 rng(5);
  int checked = 0;
  for (const TensorInfo& t : lora->tensors()) {
    for (int trial = 0; trial < 2; ++trial) {
      const int64_t i = t.offset + static_cast<int64_t>(rng() % t.numel);
      const float saved = lora->weights()[i];
      const float h = 1e-2f;
      lora->weights()[i] = saved + h;
      const double plus = *model->Loss(b.tokens, b.targets, b.B, b.T);
      lora->weights()[i] = saved - h;
      const double minus = *model->Loss(b.tokens, b.targets, b.B, b.T);
      lora->weights()[i] = saved;
      const double numeric = (plus - minus) / (2 * h);
      EXPECT_NEAR(grads[i], numeric, 2e-3 + 3e-2 * std::fabs(numeric))
          << t.name << " element " << i - t.offset;
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
  // A frozen base takes no weight source (a ZeRO-3 optimizer would update the base).
  class NoSource : public Transformer::WeightSource {
    absl::Status Begin(const float**, float**) override { return absl::OkStatus(); }
    absl::StatusOr<const float*> BlockWeights(int, bool) override { return nullptr; }
    absl::StatusOr<float*> BlockGrads(int) override { return nullptr; }
    absl::Status BlockGradsDone(int) override { return absl::OkStatus(); }
    absl::Status End() override { return absl::OkStatus(); }
  } source;
  EXPECT_EQ(model->ForwardBackward(b.tokens, b.targets, b.B, b.T, &source).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(LoraTest, MergedWeightsGiveTheAdaptedModelsLoss) {
  auto model = Model(GetParam());
  auto lora = Adapters(*model, DefaultLoraTargets(GetParam()), 7);
  const Batch b = MakeBatch(model->config().vocab_size, 6);
  const float base = *model->Loss(b.tokens, b.targets, b.B, b.T);
  model->SetAdapters(lora.get(), true);
  const float adapted = *model->Loss(b.tokens, b.targets, b.B, b.T);
  EXPECT_GT(std::fabs(adapted - base), 1e-3);  // The adapters matter.
  model->SetAdapters(nullptr, false);
  const std::vector<float> before(model->params().begin(), model->params().end());
  lora->MergeInto(*model);
  EXPECT_NEAR(*model->Loss(b.tokens, b.targets, b.B, b.T), adapted, 2e-5 * std::fabs(adapted));
  // Element by element: W + (alpha / r) B A, computed here naively.
  const TensorInfo& a = lora->tensors()[0];
  const TensorInfo& bt = lora->tensors()[1];
  const std::string module = a.name.substr(17, a.name.size() - 17 - 14);  // No prefix/suffix.
  const int id = model->layout().FindByName(module + ".weight");
  ASSERT_GE(id, 0) << module;
  const TensorInfo& w = model->layout().tensor(id);
  const int64_t in = a.shape[1], r = a.shape[0];
  for (int64_t o = 0; o < bt.shape[0]; o += 3) {
    for (int64_t i = 0; i < in; i += 5) {
      double delta = 0;
      for (int64_t k = 0; k < r; ++k) {
        delta +=
            double{lora->weights()[bt.offset + o * r + k]} * lora->weights()[a.offset + k * in + i];
      }
      // Fused QKV / gate-up: the layer's rows start where its tensor starts.
      const int64_t at = w.offset + o * in + i;
      EXPECT_NEAR(model->params()[at], before[at] + 2.0 * delta,
                  1e-5 * (1 + std::fabs(before[at])));
    }
  }
}

TEST_P(LoraTest, PeftDirectoriesRoundTripBitwise) {
  auto model = Model(GetParam());
  auto lora = Adapters(*model, DefaultLoraTargets(GetParam()), 5);
  const std::string dir =
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/peft_", ModelFamilyName(GetParam()));
  ASSERT_TRUE(SaveLoraAdapter(*lora, model->config(), dir).ok());
  absl::StatusOr<std::unique_ptr<LoraAdapters>> loaded = LoadLoraAdapter(dir, model->layout());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ((*loaded)->NumElements(), lora->NumElements());
  EXPECT_EQ(std::memcmp((*loaded)->weights().data(), lora->weights().data(),
                        sizeof(float) * lora->NumElements()),
            0);
  EXPECT_EQ((*loaded)->config().r, 3);
  EXPECT_EQ((*loaded)->config().alpha, 6.0f);
  // merge: a plain checkpoint whose loss is the adapted model's.
  const std::string base_dir = dir + "_base", merged_dir = dir + "_merged";
  ASSERT_TRUE(SaveHfCheckpoint(*model, base_dir).ok());
  ASSERT_TRUE(MergeLoraCheckpoint(base_dir, dir, merged_dir).ok());
  auto merged = *LoadHfCheckpoint(merged_dir);
  const Batch b = MakeBatch(model->config().vocab_size, 8);
  model->SetAdapters(lora.get(), true);
  const float adapted = *model->Loss(b.tokens, b.targets, b.B, b.T);
  EXPECT_NEAR(*merged->Loss(b.tokens, b.targets, b.B, b.T), adapted, 2e-5 * std::fabs(adapted));
}

TEST_P(LoraTest, ZoAdaptersScalarIsTheTwoSidedEstimateAndReplayIsBitwise) {
  auto model = Model(GetParam());
  const std::vector<float> base(model->params().begin(), model->params().end());
  auto lora = Adapters(*model, DefaultLoraTargets(GetParam()), 11);
  const std::vector<float> initial(lora->weights().begin(), lora->weights().end());
  zo::ZoConfig config;
  config.seed = 17;
  config.eps = 1e-2f;
  config.weight_decay = 0.01f;
  config.num_perturbations = 2;
  auto zo = ZoAdapters::Create(model.get(), lora.get(), config);
  ASSERT_TRUE(zo.ok()) << zo.status();
  const Batch b = MakeBatch(model->config().vocab_size, 12);
  // The first scalar, recomputed here with explicit perturbed copies.
  std::vector<float> plus(initial.size()), minus(initial.size());
  const zo::NoiseKey key{zo::StepSeed(config.seed, 1), 0, config.distribution};
  for (const TensorInfo& t : lora->tensors()) {
    zo::Perturb(plus.data() + t.offset, minus.data() + t.offset, initial.data() + t.offset, 0,
                t.numel, static_cast<uint32_t>(t.id), key, config.eps, zo::kNoMask);
  }
  std::copy(plus.begin(), plus.end(), lora->weights().begin());
  const double lp = *model->Loss(b.tokens, b.targets, b.B, b.T);
  std::copy(minus.begin(), minus.end(), lora->weights().begin());
  const double lm = *model->Loss(b.tokens, b.targets, b.B, b.T);
  std::copy(initial.begin(), initial.end(), lora->weights().begin());

  std::vector<zo::ZoStepRecord> records;
  for (int step = 1; step <= 5; ++step) {
    absl::StatusOr<zo::ZoStepRecord> r = (*zo)->Step(b.tokens, b.targets, b.B, b.T, step, 1e-2);
    ASSERT_TRUE(r.ok()) << r.status();
    records.push_back(*r);
  }
  EXPECT_EQ(records[0].scalars[0], static_cast<float>((lp - lm) / (2.0 * config.eps)));
  EXPECT_EQ(std::memcmp(model->params().data(), base.data(), base.size() * sizeof(float)), 0)
      << "the base must stay unchanged";
  EXPECT_NE(std::memcmp(lora->weights().data(), initial.data(), initial.size() * sizeof(float)), 0);

  auto model2 = Model(GetParam());
  auto lora2 = Adapters(*model2, DefaultLoraTargets(GetParam()), 11);
  auto replay = ZoAdapters::Create(model2.get(), lora2.get(), config);
  ASSERT_TRUE(replay.ok());
  for (const zo::ZoStepRecord& r : records) ASSERT_TRUE((*replay)->Replay(r).ok());
  EXPECT_EQ(std::memcmp(lora2->weights().data(), lora->weights().data(),
                        sizeof(float) * lora->NumElements()),
            0);
}

INSTANTIATE_TEST_SUITE_P(Families, LoraTest, ::testing::ValuesIn(testing_models::AllFamilies()),
                         [](const ::testing::TestParamInfo<ModelFamily>& info) {
                           return std::string(ModelFamilyName(info.param));
                         });

TEST(LoraConfigTest, TargetsMatchAsPeftMatchesThem) {
  auto model = *Transformer::Create(testing_models::Tiny(ModelFamily::kLlama, 2));
  LoraConfig config;
  config.target_modules = {"q_proj", "v_proj"};
  auto qv = *LoraAdapters::Create(model->layout(), config);
  EXPECT_EQ(qv->tensors().size(), 2u * 2 * 2);  // 2 layers x 2 modules x (A, B).
  EXPECT_EQ(qv->tensors()[0].name,
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  config.target_modules = {"all-linear"};
  EXPECT_EQ((*LoraAdapters::Create(model->layout(), config))->tensors().size(), 2u * 7 * 2);
  config.target_modules = {"self_attn.o_proj"};
  EXPECT_EQ((*LoraAdapters::Create(model->layout(), config))->tensors().size(), 2u * 2);
  config.target_modules = {"c_attn"};
  EXPECT_THAT(LoraAdapters::Create(model->layout(), config).status().message(),
              HasSubstr("\"c_attn\" matches no linear layer"));
  auto gpt2 = *Transformer::Create(testing_models::Tiny(ModelFamily::kGpt2, 1));
  config.target_modules = {"c_proj"};  // Both attn.c_proj and mlp.c_proj, as in PEFT.
  EXPECT_EQ((*LoraAdapters::Create(gpt2->layout(), config))->tensors().size(), 4u);
}

TEST(LoraConfigTest, UnsupportedPeftKeysAreRefusedByName) {
  const std::string base = R"({"peft_type": "LORA", "r": 8, "lora_alpha": 16,
      "target_modules": ["q_proj", "v_proj"])";
  absl::StatusOr<LoraConfig> ok = ParsePeftConfig(base + R"(, "bias": "none", "use_rslora": false,
      "modules_to_save": null, "rank_pattern": {}, "task_type": "CAUSAL_LM"})",
                                                  "a.json");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->scale(), 2.0f);
  for (const auto& [extra, key] : std::vector<std::pair<std::string, std::string>>{
           {R"(, "use_dora": true})", "\"use_dora\""},
           {R"(, "use_rslora": true})", "\"use_rslora\""},
           {R"(, "bias": "all"})", "\"bias\""},
           {R"(, "modules_to_save": ["lm_head"]})", "\"modules_to_save\""},
           {R"(, "rank_pattern": {"q_proj": 4}})", "\"rank_pattern\""}}) {
    EXPECT_THAT(ParsePeftConfig(base + extra, "a.json").status().message(), HasSubstr(key))
        << extra;
  }
  EXPECT_THAT(
      ParsePeftConfig(R"({"peft_type": "LORA", "r": 8, "target_modules": ".*q_proj"})", "a.json")
          .status()
          .message(),
      HasSubstr("regular expression"));
  EXPECT_THAT(ParsePeftConfig(R"({"peft_type": "IA3"})", "a.json").status().message(),
              HasSubstr("\"peft_type\""));
}

}  // namespace
}  // namespace strata
