// First-order training on real text shipped with Debian (the license texts): the held-out loss
// must fall well below the corpus's unigram entropy for both families, and the saved checkpoint
// must reload to the same held-out loss. With LoRA: the adapters learn a pattern over a frozen
// base (no base gradient allocated), an interrupted run resumes to the same adapter bits, the
// export is a PEFT directory, and settings LoRA cannot honour are refused.
#include "runtime/train/fo_trainer.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/peft/lora_adapters.h"
#include "runtime/peft/peft_checkpoint.h"
#include "runtime/testing/tiny_models.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

ModelConfig Small(ModelFamily family) {
  ModelConfig c;
  c.family = family;
  c.vocab_size = 257;
  c.max_seq_len = 64;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_kv_head = family == ModelFamily::kLlama ? 2 : 4;
  c.d_model = 128;
  c.d_ff = 384;
  c.tie_embeddings = family == ModelFamily::kGpt2;
  return c;
}

class FoTrainerTest : public ::testing::TestWithParam<ModelFamily> {};

TEST_P(FoTrainerTest, LossFallsWellBelowUnigramEntropyAndCheckpointReloads) {
  ByteTokenizer bytes;
  auto corpus = TokenCorpus::Load(
      {"/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0",
       "/usr/share/common-licenses/MPL-2.0"},
      CorpusFormat::kText, &bytes, "", 257);
  if (!corpus.ok()) GTEST_SKIP() << "license texts not available: " << corpus.status();
  const absl::Span<const int32_t> all = corpus->tokens();
  const int64_t split = all.size() * 9 / 10;
  const TokenCorpus train = TokenCorpus::FromTokens({all.begin(), all.begin() + split});
  const TokenCorpus eval = TokenCorpus::FromTokens({all.begin() + split, all.end()});
  const double entropy = corpus->UnigramEntropy();
  EXPECT_GT(entropy, 2.5);  // English bytes: ~3 nats.

  auto model = Transformer::Create(Small(GetParam()));
  ASSERT_TRUE(model.ok());
  (*model)->InitializeParameters(3);
  FoTrainerOptions options;
  options.batch = 16;
  options.seq = 64;
  options.steps = 300;
  options.lr = {LrSchedule::Kind::kCosine, 2e-3, 20, 0.1, 0};
  options.log_every = 0;
  const char* tmp = std::getenv("TEST_TMPDIR");
  options.save_dir =
      std::string(tmp ? tmp : "/tmp") + "/trained_" + std::string(ModelFamilyName(GetParam()));
  auto trainer = FoTrainer::Create(model->get(), &train, &eval, options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const float before = (*(*trainer)->Evaluate()).loss;
  EXPECT_NEAR(before, std::log(257.0), 0.2);
  std::vector<std::string> log;
  ASSERT_TRUE((*trainer)->Run([&log](const std::string& line) { log.push_back(line); }).ok());
  const float after = (*(*trainer)->Evaluate()).loss;
  std::printf("%s: held-out loss %.4f -> %.4f nats; unigram entropy %.4f\n",
              std::string(ModelFamilyName(GetParam())).c_str(), before, after, entropy);
  EXPECT_LT(after, 0.8 * entropy) << "eval loss " << after << ", unigram entropy " << entropy;
  ASSERT_FALSE(log.empty());
  EXPECT_NE(log.back().find("saved"), std::string::npos);

  auto reloaded = LoadHfCheckpoint(options.save_dir);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  auto again = FoTrainer::Create(reloaded->get(), &train, &eval, options);
  EXPECT_EQ((*(*again)->Evaluate()).loss, after);
}

INSTANTIATE_TEST_SUITE_P(Families, FoTrainerTest,
                         ::testing::Values(ModelFamily::kGpt2, ModelFamily::kLlama));

// Checkpointed FO runs on the GPL text: 30 steps, a checkpoint every 10.
class FoTrainerCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ByteTokenizer bytes;
    auto corpus = TokenCorpus::Load({"/usr/share/common-licenses/GPL-3"}, CorpusFormat::kText,
                                    &bytes, "", 257);
    ASSERT_TRUE(corpus.ok());
    corpus_ = std::make_unique<TokenCorpus>(*std::move(corpus));
    options_.batch = 4;
    options_.seq = 16;
    options_.steps = 30;
    options_.lr = {LrSchedule::Kind::kCosine, 3e-3, 3, 1.0 / 30, 0};
    options_.log_every = 0;
    options_.checkpoint_every = 10;
  }

  std::string Dir(const std::string& name) const {
    return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  }

  // A model initialized from `seed`, trained to the end with `options_` (resuming whatever
  // checkpoint_dir holds); `lines` gets the progress lines.
  std::unique_ptr<Transformer> Run(ModelFamily family, uint64_t seed,
                                   std::vector<std::string>* lines = nullptr) {
    auto model = *Transformer::Create(Small(family));
    model->InitializeParameters(seed);
    auto trainer = FoTrainer::Create(model.get(), corpus_.get(), nullptr, options_);
    EXPECT_TRUE(trainer.ok()) << trainer.status();
    if (!trainer.ok()) return model;
    const absl::Status status = (*trainer)->Run([&](const std::string& line) {
      if (lines != nullptr) lines->push_back(line);
    });
    EXPECT_TRUE(status.ok()) << status;
    return model;
  }

  // Like a crash after 25 steps: checkpoints at 10 and 20 written, steps 21-25 lost.
  void RunInterrupted(ModelFamily family) {
    auto model = *Transformer::Create(Small(family));
    model->InitializeParameters(1);
    auto cut = *FoTrainer::Create(model.get(), corpus_.get(), nullptr, options_);
    ASSERT_TRUE(cut->Resume([](const std::string&) {}).ok());
    for (int s = 1; s <= 25; ++s) {
      ASSERT_TRUE(cut->Step().ok());
      if (s % 10 == 0) {
        ASSERT_TRUE(cut->SaveCheckpoint().ok());
      }
    }
  }

  static bool SameWeights(Transformer& a, Transformer& b) {
    return std::memcmp(a.params().data(), b.params().data(), a.params().size() * sizeof(float)) ==
           0;
  }

  std::unique_ptr<TokenCorpus> corpus_;
  FoTrainerOptions options_;
};

TEST_F(FoTrainerCheckpointTest, AnInterruptedRunResumesToTheSameWeights) {
  options_.checkpoint_dir = Dir("fo_ckpt/full");
  auto full = Run(ModelFamily::kLlama, 1);
  options_.checkpoint_dir = Dir("fo_ckpt/cut");
  RunInterrupted(ModelFamily::kLlama);
  std::vector<std::string> lines;
  auto resumed = Run(ModelFamily::kLlama, 7, &lines);  // Weights replaced by the checkpoint.
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines[0].find("at step 20"), std::string::npos) << lines[0];
  EXPECT_TRUE(SameWeights(*resumed, *full));
}

TEST_F(FoTrainerCheckpointTest, OptimizerStateOnNvmeTrainsAndResumesLikeMemory) {
  // Reference: state in memory, uninterrupted.
  options_.checkpoint_dir = Dir("fo_nvme/memory");
  auto memory = Run(ModelFamily::kGpt2, 1);
  // State on NVMe, interrupted after 25 steps, resumed.
  options_.optimizer_state_dirs = {Dir("fo_nvme/nvme-state")};
  options_.checkpoint_dir = Dir("fo_nvme/nvme");
  RunInterrupted(ModelFamily::kGpt2);
  auto resumed = Run(ModelFamily::kGpt2, 1);
  EXPECT_TRUE(SameWeights(*resumed, *memory));
  // The state really went through NVMe files and into the checkpoint as a stream.
  EXPECT_EQ(std::system(("ls " + Dir("fo_nvme/nvme-state") + "/* >/dev/null").c_str()), 0);
  EXPECT_EQ(std::system(
                ("ls " + Dir("fo_nvme/nvme") + "/rank0/ckpt-*/adam_state.bin >/dev/null").c_str()),
            0);
}

TEST(FoTrainerOptionsTest, RejectsSequencesLongerThanTheModel) {
  auto model = Transformer::Create(Small(ModelFamily::kGpt2));
  const TokenCorpus corpus = TokenCorpus::FromTokens(std::vector<int32_t>(10000, 1));
  FoTrainerOptions options;
  options.seq = 65;
  EXPECT_EQ(FoTrainer::Create(model->get(), &corpus, nullptr, options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// LoRA: adapters over a frozen tiny model.
std::string TestDir(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

LoraConfig AllLinear() {
  LoraConfig config;
  config.r = 4;
  config.alpha = 8.0f;
  config.target_modules = {"all-linear"};
  return config;
}

std::unique_ptr<Transformer> TinyModel(ModelFamily family) {
  auto model = *Transformer::Create(testing_models::Tiny(family, 2));
  model->InitializeParameters(1);
  return model;
}

// A corpus a small model can learn: a repeating 11-token phrase.
TokenCorpus Pattern() {
  std::vector<int32_t> tokens(4000);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 7) % 11 + 3);
  return TokenCorpus::FromTokens(std::move(tokens));
}

FoTrainerOptions LoraOptions() {
  FoTrainerOptions options;
  options.batch = 4;
  options.seq = 12;
  options.steps = 30;
  options.lr = {LrSchedule::Kind::kConstant, 1e-2, 0, 0, 0};
  options.log_every = 0;
  options.eval_batches = 2;
  return options;
}

TEST(FoLoraTrainerTest, LearnsWithTheBaseFrozenAndExportsAPeftDirectory) {
  const TokenCorpus corpus = Pattern();
  auto model = TinyModel(ModelFamily::kLlama);
  // A base whose head can express confident predictions (at init its logits span ~0.6).
  for (float& p : model->params()) p *= 10.0f;
  const std::vector<float> base(model->params().begin(), model->params().end());
  auto lora = *LoraAdapters::Create(model->layout(), AllLinear());
  lora->Initialize(2);
  FoTrainerOptions options = LoraOptions();
  options.adapters = lora.get();
  options.steps = 60;
  options.save_dir = TestDir("fo_lora_export");
  auto trainer = FoTrainer::Create(model.get(), &corpus, &corpus, options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const float before = (*(*trainer)->Evaluate()).loss;
  std::vector<std::string> lines;
  ASSERT_TRUE((*trainer)->Run([&](const std::string& l) { lines.push_back(l); }).ok());
  const float after = (*(*trainer)->Evaluate()).loss;
  std::printf("FO-LoRA: loss %.4f -> %.4f\n", before, after);
  EXPECT_LT(after, 0.6f * before);
  EXPECT_EQ(model->GradientBytes(), 0);
  EXPECT_EQ(std::memcmp(base.data(), model->params().data(), base.size() * sizeof(float)), 0);
  ASSERT_FALSE(lines.empty());
  EXPECT_THAT(lines[0], HasSubstr("LoRA r=4"));
  auto exported = LoadLoraAdapter(options.save_dir, model->layout());
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_EQ(std::memcmp((*exported)->weights().data(), lora->weights().data(),
                        lora->NumElements() * sizeof(float)),
            0);
}

TEST(FoLoraTrainerTest, AnInterruptedRunResumesToTheSameAdapterBits) {
  const TokenCorpus corpus = Pattern();
  auto run = [&](const std::string& dir, int stop_after) {
    auto model = TinyModel(ModelFamily::kGpt2);
    auto lora = *LoraAdapters::Create(model->layout(), AllLinear());
    lora->Initialize(2);
    FoTrainerOptions options = LoraOptions();
    options.adapters = lora.get();
    options.checkpoint_dir = dir;
    options.checkpoint_every = 10;
    auto trainer = *FoTrainer::Create(model.get(), &corpus, nullptr, options);
    EXPECT_TRUE(trainer->Resume([](const std::string&) {}).ok());
    if (stop_after > 0) {
      for (int s = 1; s <= stop_after; ++s) {  // Like a crash: checkpoints at 10 and 20 only.
        EXPECT_TRUE(trainer->Step().ok());
        if (s % 10 == 0) {
          EXPECT_TRUE(trainer->SaveCheckpoint().ok());
        }
      }
    } else {
      EXPECT_TRUE(trainer->Run([](const std::string&) {}).ok());
    }
    return std::vector<float>(lora->weights().begin(), lora->weights().end());
  };
  const std::vector<float> whole = run(TestDir("fo_lora_whole"), 0);
  run(TestDir("fo_lora_cut"), 25);
  const std::vector<float> resumed = run(TestDir("fo_lora_cut"), 0);
  ASSERT_EQ(whole.size(), resumed.size());
  EXPECT_EQ(std::memcmp(whole.data(), resumed.data(), whole.size() * sizeof(float)), 0);
}

TEST(FoLoraTrainerTest, RefusesWhatItCannotHonour) {
  const TokenCorpus corpus = Pattern();
  auto model = TinyModel(ModelFamily::kGpt2);
  auto lora = *LoraAdapters::Create(model->layout(), AllLinear());
  FoTrainerOptions options = LoraOptions();
  options.adapters = lora.get();
  options.zero_stage = 1;
  EXPECT_THAT(FoTrainer::Create(model.get(), &corpus, nullptr, options).status().message(),
              HasSubstr("ZeRO stages 1-3"));
  options.zero_stage = 0;
  options.optimizer_state_dirs = {TestDir("nowhere")};
  EXPECT_THAT(FoTrainer::Create(model.get(), &corpus, nullptr, options).status().message(),
              HasSubstr("no offload"));
}

}  // namespace
}  // namespace strata
