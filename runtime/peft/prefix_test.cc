// Prefix tuning on every family: a prefix initialized from real activations is the key/value
// cache of that text, so the model with it on the rest of a sequence gives the logits the plain
// model gives for the whole sequence (positions, masks, windows and the PEFT layout all have to
// agree for that); prefix gradients against finite differences with the base frozen; PEFT
// PREFIX_TUNING directories round-tripping bitwise and refused when they do not fit the model;
// ZO over a prefix replaying bit for bit; FO training of a prefix lowering the loss.
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/peft/peft_checkpoint.h"
#include "runtime/peft/prefix_adapters.h"
#include "runtime/peft/zo_adapters.h"
#include "runtime/testing/tiny_models.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

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

std::vector<int32_t> Tokens(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = static_cast<int32_t>(rng() % vocab);
  return t;
}

class PrefixTest : public ::testing::TestWithParam<ModelFamily> {};

TEST_P(PrefixTest, APrefixOfRealActivationsIsTheCacheOfThatText) {
  auto model = Model(GetParam());
  const ModelConfig& c = model->config();
  const int P = 6, T = 7;  // Tiny windows are 5: the prefix falls out of them.
  const std::vector<int32_t> text = Tokens(P + T, c.vocab_size, 2);
  std::vector<float> whole(static_cast<size_t>(P + T) * c.vocab_size);
  ASSERT_TRUE(model->Logits(text, 1, P + T, whole.data()).ok());
  auto prefix = *PrefixAdapters::Create(model->layout(), P);
  ASSERT_TRUE(prefix->InitializeFromActivations(*model, {text.data(), P}).ok());
  model->SetAdapters(prefix.get(), /*base_frozen=*/true);
  std::vector<float> rest(static_cast<size_t>(T) * c.vocab_size);
  ASSERT_TRUE(model->Logits({text.data() + P, T}, 1, T, rest.data()).ok());
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < rest.size(); ++i) {
    max_diff = std::max(max_diff, std::fabs(double{rest[i]} - whole[P * c.vocab_size + i]));
    max_abs = std::max(max_abs, std::fabs(double{rest[i]}));
  }
  EXPECT_LE(max_diff, 2e-5 * (1 + max_abs)) << "max |logit| " << max_abs;
  // A prefix longer than the positions leave room for is refused by name.
  EXPECT_THAT(model->Logits(Tokens(c.max_seq_len, c.vocab_size, 3), 1, c.max_seq_len, rest.data())
                  .message(),
              HasSubstr("after a prefix of 6"));
}

TEST_P(PrefixTest, PrefixGradientsMatchFiniteDifferencesWithTheBaseFrozen) {
  auto model = Model(GetParam());
  auto prefix = *PrefixAdapters::Create(model->layout(), 3);
  prefix->Initialize(4);
  // Keys and values on the scale of the tokens' own (the ×8 weights saturate softmax otherwise
  // and central differences with h = 1e-2 stop being accurate).
  for (float& w : prefix->weights()) w *= 0.25f;
  model->SetAdapters(prefix.get(), /*base_frozen=*/true);
  const int B = 2, T = 6;
  const std::vector<int32_t> tokens = Tokens(B * T, model->config().vocab_size, 5);
  const std::vector<int32_t> targets = Tokens(B * T, model->config().vocab_size, 6);
  prefix->ZeroGrads();
  absl::StatusOr<float> loss = model->ForwardBackward(tokens, targets, B, T);
  ASSERT_TRUE(loss.ok()) << loss.status();
  EXPECT_NEAR(*loss, *model->Loss(tokens, targets, B, T), 1e-5 * std::fabs(*loss));
  EXPECT_EQ(model->GradientBytes(), 0);
  const std::vector<float> grads(prefix->grads().begin(), prefix->grads().end());
  std::mt19937 rng(7);
  double largest = 0;
  for (float g : grads) largest = std::max(largest, std::fabs(double{g}));
  ASSERT_GT(largest, 1e-4);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t i = static_cast<int64_t>(rng() % grads.size());
    const float saved = prefix->weights()[i];
    const float h = 1e-2f;
    prefix->weights()[i] = saved + h;
    const double plus = *model->Loss(tokens, targets, B, T);
    prefix->weights()[i] = saved - h;
    const double minus = *model->Loss(tokens, targets, B, T);
    prefix->weights()[i] = saved;
    const double numeric = (plus - minus) / (2 * h);
    EXPECT_NEAR(grads[i], numeric, 2e-3 * largest + 3e-2 * std::fabs(numeric)) << "element " << i;
  }
}

TEST_P(PrefixTest, PeftDirectoriesRoundTripBitwiseAndMustFitTheModel) {
  auto model = Model(GetParam());
  auto prefix = *PrefixAdapters::Create(model->layout(), 4);
  prefix->Initialize(8);
  const std::string dir =
      absl::StrCat(std::getenv("TEST_TMPDIR"), "/prefix_", ModelFamilyName(GetParam()));
  ASSERT_TRUE(SaveAdapters(*prefix, model->config(), dir).ok());
  std::ifstream config_file(dir + "/adapter_config.json");
  const std::string config((std::istreambuf_iterator<char>(config_file)),
                           std::istreambuf_iterator<char>());
  EXPECT_THAT(config, HasSubstr("\"peft_type\": \"PREFIX_TUNING\""));
  EXPECT_THAT(config, HasSubstr("\"num_virtual_tokens\": 4"));
  auto loaded = LoadAdapters(dir, model->layout());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ((*loaded)->kind(), TrainableAdapters::Kind::kPrefix);
  ASSERT_EQ((*loaded)->NumElements(), prefix->NumElements());
  EXPECT_EQ(std::memcmp((*loaded)->weights().data(), prefix->weights().data(),
                        prefix->NumElements() * sizeof(float)),
            0);
  // Another model's prefix (one more layer) is refused naming the field.
  ModelConfig deeper = model->config();
  deeper.n_layer += 1;
  const ParamLayout other(deeper);
  EXPECT_THAT(LoadAdapters(dir, other).status().message(), HasSubstr("num_layers"));
  // A hand-edited config: a prefix_projection of any other value, or other kv heads, is refused
  // (not a crash on a value of the wrong type).
  for (const auto& [from, to, field] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"\"prefix_projection\": false", "\"prefix_projection\": null", "prefix_projection"},
           {"\"num_attention_heads\": ", "\"num_attention_heads\": 1", "num_attention_heads"}}) {
    std::string edited = config;
    const size_t at = edited.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    edited.replace(at, from.size(), to);
    const std::string bad_dir = dir + "_" + field;
    ASSERT_TRUE(SaveAdapters(*prefix, model->config(), bad_dir).ok());
    std::ofstream(bad_dir + "/adapter_config.json") << edited;
    EXPECT_THAT(LoadAdapters(bad_dir, model->layout()).status().message(), HasSubstr(field));
  }
  // Loading into adapters of another kind or size names both.
  auto shorter = *PrefixAdapters::Create(model->layout(), 3);
  EXPECT_THAT(LoadAdapterWeights(dir, model->layout(), *shorter).message(),
              HasSubstr("not the adapters this run trains"));
}

TEST_P(PrefixTest, ZoOverAPrefixReplaysBitForBit) {
  auto model = Model(GetParam());
  auto prefix = *PrefixAdapters::Create(model->layout(), 2);
  prefix->Initialize(1);
  const std::vector<float> base(model->params().begin(), model->params().end());
  zo::ZoConfig config;
  config.seed = 9;
  config.eps = 1e-1f;  // MeZO's prefix setting.
  auto zo = ZoAdapters::Create(model.get(), prefix.get(), config);
  ASSERT_TRUE(zo.ok()) << zo.status();
  std::vector<zo::ZoStepRecord> records;
  for (int step = 1; step <= 4; ++step) {
    const std::vector<int32_t> tokens = Tokens(12, model->config().vocab_size, 20 + step);
    const std::vector<int32_t> targets = Tokens(12, model->config().vocab_size, 40 + step);
    auto record = (*zo)->Step(tokens, targets, 2, 6, step, 1e-2);
    ASSERT_TRUE(record.ok()) << record.status();
    EXPECT_NE(record->scalars[0], 0.0f);
    records.push_back(*record);
  }
  EXPECT_EQ(std::memcmp(base.data(), model->params().data(), base.size() * sizeof(float)), 0);
  auto model2 = Model(GetParam());
  auto prefix2 = *PrefixAdapters::Create(model2->layout(), 2);
  prefix2->Initialize(1);
  auto replay = ZoAdapters::Create(model2.get(), prefix2.get(), config);
  for (const zo::ZoStepRecord& r : records) ASSERT_TRUE((*replay)->Replay(r).ok());
  EXPECT_EQ(std::memcmp(prefix->weights().data(), prefix2->weights().data(),
                        prefix->NumElements() * sizeof(float)),
            0);
}

INSTANTIATE_TEST_SUITE_P(Families, PrefixTest, ::testing::ValuesIn(testing_models::AllFamilies()),
                         [](const auto& info) { return std::string(ModelFamilyName(info.param)); });

}  // namespace
}  // namespace strata
