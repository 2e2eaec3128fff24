// First-order training on real text shipped with Debian (the license texts): the held-out loss
// must fall well below the corpus's unigram entropy for both families, and the saved checkpoint
// must reload to the same held-out loss.
#include "runtime/train/fo_trainer.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "gtest/gtest.h"
#include "runtime/model/hf_checkpoint.h"

namespace strata {
namespace {

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
  options.lr = 2e-3f;
  options.min_lr = 2e-4f;
  options.warmup = 20;
  options.log_every = 0;
  const char* tmp = std::getenv("TEST_TMPDIR");
  options.save_dir =
      std::string(tmp ? tmp : "/tmp") + "/trained_" + std::string(ModelFamilyName(GetParam()));
  auto trainer = FoTrainer::Create(model->get(), &train, &eval, options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const float before = *(*trainer)->Evaluate();
  EXPECT_NEAR(before, std::log(257.0), 0.2);
  std::vector<std::string> log;
  ASSERT_TRUE((*trainer)->Run([&log](const std::string& line) { log.push_back(line); }).ok());
  const float after = *(*trainer)->Evaluate();
  std::printf("%s: held-out loss %.4f -> %.4f nats; unigram entropy %.4f\n",
              std::string(ModelFamilyName(GetParam())).c_str(), before, after, entropy);
  EXPECT_LT(after, 0.8 * entropy) << "eval loss " << after << ", unigram entropy " << entropy;
  ASSERT_FALSE(log.empty());
  EXPECT_NE(log.back().find("saved"), std::string::npos);

  auto reloaded = LoadHfCheckpoint(options.save_dir);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  auto again = FoTrainer::Create(reloaded->get(), &train, &eval, options);
  EXPECT_EQ(*(*again)->Evaluate(), after);
}

INSTANTIATE_TEST_SUITE_P(Families, FoTrainerTest,
                         ::testing::Values(ModelFamily::kGpt2, ModelFamily::kLlama));

TEST(FoTrainerCheckpointTest, AnInterruptedRunResumesToTheSameWeights) {
  ByteTokenizer bytes;
  auto corpus =
      TokenCorpus::Load({"/usr/share/common-licenses/GPL-3"}, CorpusFormat::kText, &bytes, "", 257);
  ASSERT_TRUE(corpus.ok());
  const std::string root = std::string(std::getenv("TEST_TMPDIR")) + "/fo_ckpt";
  FoTrainerOptions o;
  o.batch = 4;
  o.seq = 16;
  o.steps = 30;
  o.lr = 3e-3f;
  o.warmup = 3;
  o.log_every = 0;
  o.checkpoint_every = 10;
  auto quiet = [](const std::string&) {};
  auto full = *Transformer::Create(Small(ModelFamily::kLlama));
  full->InitializeParameters(1);
  o.checkpoint_dir = root + "/full";
  ASSERT_TRUE((*FoTrainer::Create(full.get(), &*corpus, nullptr, o))->Run(quiet).ok());
  // Interrupted after 25 steps: checkpoints at 10 and 20, steps 21-25 lost.
  o.checkpoint_dir = root + "/cut";
  {
    auto model = *Transformer::Create(Small(ModelFamily::kLlama));
    model->InitializeParameters(1);
    auto cut = *FoTrainer::Create(model.get(), &*corpus, nullptr, o);
    ASSERT_TRUE(cut->Resume(quiet).ok());
    for (int s = 1; s <= 25; ++s) {
      ASSERT_TRUE(cut->Step().ok());
      if (s % 10 == 0) {
        ASSERT_TRUE(cut->SaveCheckpoint().ok());
      }
    }
  }
  auto model = *Transformer::Create(Small(ModelFamily::kLlama));
  model->InitializeParameters(7);  // Replaced by the checkpoint.
  auto resumed = *FoTrainer::Create(model.get(), &*corpus, nullptr, o);
  std::vector<std::string> lines;
  ASSERT_TRUE(resumed->Run([&](const std::string& l) { lines.push_back(l); }).ok());
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines[0].find("at step 20"), std::string::npos) << lines[0];
  EXPECT_EQ(std::memcmp(model->params().data(), full->params().data(),
                        full->params().size() * sizeof(float)),
            0);
}

TEST(FoTrainerCheckpointTest, OptimizerStateOnNvmeTrainsAndResumesLikeMemory) {
  ByteTokenizer bytes;
  auto corpus =
      TokenCorpus::Load({"/usr/share/common-licenses/GPL-3"}, CorpusFormat::kText, &bytes, "", 257);
  ASSERT_TRUE(corpus.ok());
  const std::string root = std::string(std::getenv("TEST_TMPDIR")) + "/fo_nvme";
  FoTrainerOptions o;
  o.batch = 4;
  o.seq = 16;
  o.steps = 30;
  o.lr = 3e-3f;
  o.warmup = 3;
  o.log_every = 0;
  o.checkpoint_every = 10;
  auto quiet = [](const std::string&) {};
  // Reference: state in memory, uninterrupted.
  auto memory = *Transformer::Create(Small(ModelFamily::kGpt2));
  memory->InitializeParameters(1);
  o.checkpoint_dir = root + "/memory";
  ASSERT_TRUE((*FoTrainer::Create(memory.get(), &*corpus, nullptr, o))->Run(quiet).ok());
  // State on NVMe, interrupted after 25 steps, resumed.
  o.optimizer_state_dirs = {root + "/nvme-state"};
  o.checkpoint_dir = root + "/nvme";
  {
    auto model = *Transformer::Create(Small(ModelFamily::kGpt2));
    model->InitializeParameters(1);
    auto cut = *FoTrainer::Create(model.get(), &*corpus, nullptr, o);
    ASSERT_TRUE(cut->Resume(quiet).ok());
    for (int s = 1; s <= 25; ++s) {
      ASSERT_TRUE(cut->Step().ok());
      if (s % 10 == 0) {
        ASSERT_TRUE(cut->SaveCheckpoint().ok());
      }
    }
  }
  auto model = *Transformer::Create(Small(ModelFamily::kGpt2));
  model->InitializeParameters(1);
  auto resumed = FoTrainer::Create(model.get(), &*corpus, nullptr, o);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ASSERT_TRUE((*resumed)->Run(quiet).ok());
  EXPECT_EQ(std::memcmp(model->params().data(), memory->params().data(),
                        memory->params().size() * sizeof(float)),
            0);
  // The state really went through NVMe files and into the checkpoint as a stream.
  EXPECT_EQ(std::system(("ls " + root + "/nvme-state/* >/dev/null").c_str()), 0);
  EXPECT_EQ(std::system(("ls " + root + "/nvme/rank0/ckpt-*/adam_state.bin >/dev/null").c_str()),
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

}  // namespace
}  // namespace strata
