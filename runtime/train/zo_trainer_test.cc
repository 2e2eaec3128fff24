// ZO training end to end: resuming from a checkpoint plus the step log equals an uninterrupted
// run bit for bit, and fine-tuning a model pretrained with the FO loop raises held-out accuracy
// on a synthetic prompt-classification task: full ZO, ZO-LoRA and FO-LoRA (the last two with
// the base unchanged).
#include "runtime/train/zo_trainer.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>

#include "gtest/gtest.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/peft/lora_adapters.h"
#include "runtime/peft/zo_adapters.h"
#include "runtime/train/adapter_adamw_update.h"
#include "runtime/train/fo_trainer.h"

namespace strata {
namespace {

std::string TmpDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return std::string(tmp ? tmp : "/tmp") + "/" + name;
}

ModelConfig Small() {
  ModelConfig c;
  c.family = ModelFamily::kLlama;
  c.vocab_size = 257;
  c.max_seq_len = 32;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_kv_head = 2;
  c.d_model = 64;
  c.d_ff = 128;
  c.tie_embeddings = true;
  return c;
}

TokenCorpus Text() {
  ByteTokenizer bytes;
  return *TokenCorpus::Load({"/usr/share/common-licenses/GPL-3"}, CorpusFormat::kText, &bytes, "",
                            257);
}

ZoTrainerOptions Options(const std::string& dir) {
  ZoTrainerOptions o;
  o.zo.seed = 17;
  o.zo.variant = zo::ZoVariant::kMomentum;  // Carries optimizer state across the checkpoint.
  o.zo.weight_decay = 0.01f;
  o.batch = 4;
  o.seq = 16;
  o.steps = 40;
  o.lr = {LrSchedule::Kind::kCosine, 1e-3, 5, 0.1, 0};
  o.log_every = 0;
  o.checkpoint_dir = dir;
  o.checkpoint_every = 10;
  return o;
}

TEST(ZoTrainerTest, ResumeAfterInterruptionEqualsAnUninterruptedRun) {
  const TokenCorpus corpus = Text();
  auto quiet = [](const std::string&) {};
  auto full = *Transformer::Create(Small());
  full->InitializeParameters(1);
  auto a = ZoTrainer::Create(full.get(), &corpus, nullptr, Options(TmpDir("zo_full")));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE((*a)->Run(quiet).ok());

  // Interrupted: 25 steps logged, last checkpoint at 20, the pending update of step 25 lost.
  {
    auto model = *Transformer::Create(Small());
    model->InitializeParameters(1);
    auto b = ZoTrainer::Create(model.get(), &corpus, nullptr, Options(TmpDir("zo_cut")));
    ASSERT_TRUE((*b)->Resume(quiet).ok());
    for (int s = 1; s <= 25; ++s) {
      ASSERT_TRUE((*b)->Step().ok());
      if (s % 10 == 0) {
        ASSERT_TRUE((*b)->SaveCheckpoint().ok());
      }
    }
  }
  auto resumed = *Transformer::Create(Small());
  resumed->InitializeParameters(999);  // Whatever it starts with, the checkpoint replaces it.
  ZoTrainerOptions options = Options(TmpDir("zo_cut"));
  // Every step reaches on_step once, in order: the 25 in the local log (the run before may
  // have stopped before sending them), then the new ones.
  std::vector<int64_t> reported;
  options.on_step = [&reported](const zo::ZoStepRecord& r) { reported.push_back(r.step); };
  auto c = ZoTrainer::Create(resumed.get(), &corpus, nullptr, options);
  std::vector<std::string> log;
  ASSERT_TRUE((*c)->Run([&log](const std::string& l) { log.push_back(l); }).ok());
  ASSERT_FALSE(log.empty());
  EXPECT_NE(log[0].find("replayed 5 logged steps: at step 25"), std::string::npos) << log[0];
  ASSERT_EQ(reported.size(), 40u);
  for (int64_t i = 0; i < 40; ++i) EXPECT_EQ(reported[i], i + 1);
  EXPECT_EQ(0, std::memcmp(full->params().data(), resumed->params().data(),
                           full->params().size() * sizeof(float)));
}

TEST(ZoTrainerTest, ARunSupersededByANewerAttemptStopsWithoutWriting) {
  const TokenCorpus corpus = Text();
  auto quiet = [](const std::string&) {};
  auto model = *Transformer::Create(Small());
  model->InitializeParameters(1);
  ZoTrainerOptions o = Options(TmpDir("zo_fenced"));
  o.job_id = "j-1";
  o.attempt = 1;
  auto old_attempt = ZoTrainer::Create(model.get(), &corpus, nullptr, o);
  const absl::StatusOr<int64_t> resumed = (*old_attempt)->Resume(quiet);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  for (int s = 0; s < 3; ++s) ASSERT_TRUE((*old_attempt)->Step().ok());
  // The job restarted elsewhere on the same storage while this rank was cut off.
  ASSERT_TRUE(AttemptFence::Claim(o.checkpoint_dir, "j-1", 2).ok());
  const std::string log_path = o.checkpoint_dir + "/steplog.bin";
  std::ifstream before(log_path, std::ios::binary | std::ios::ate);
  const auto size = before.tellg();
  absl::StatusOr<zo::ZoStepRecord> step = (*old_attempt)->Step();
  EXPECT_EQ(step.status().code(), absl::StatusCode::kFailedPrecondition) << step.status();
  EXPECT_EQ((*old_attempt)->SaveCheckpoint().code(), absl::StatusCode::kFailedPrecondition);
  std::ifstream after(log_path, std::ios::binary | std::ios::ate);
  EXPECT_EQ(after.tellg(), size) << "the superseded run appended to the step log";
  // A late restart of the old attempt does not start at all.
  auto late = ZoTrainer::Create(model.get(), &corpus, nullptr, o);
  EXPECT_EQ((*late)->Resume(quiet).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ZoTrainerTest, AStopRequestCheckpointsAndTheRunResumesToTheSameWeights) {
  const TokenCorpus corpus = Text();
  auto quiet = [](const std::string&) {};
  auto full = *Transformer::Create(Small());
  full->InitializeParameters(1);
  ASSERT_TRUE((*ZoTrainer::Create(full.get(), &corpus, nullptr, Options(TmpDir("zo_stop_full"))))
                  ->Run(quiet)
                  .ok());

  int steps_seen = 0;
  std::vector<std::string> lines;
  {
    auto model = *Transformer::Create(Small());
    model->InitializeParameters(1);
    ZoTrainerOptions o = Options(TmpDir("zo_stopped"));
    o.stop_requested = [&] { return ++steps_seen >= 13; };  // Between checkpoints.
    auto stopped = ZoTrainer::Create(model.get(), &corpus, nullptr, o);
    const absl::Status status =
        (*stopped)->Run([&](const std::string& line) { lines.push_back(line); });
    EXPECT_TRUE(absl::IsCancelled(status)) << status;
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines.back(), "stopped at step 13/40 on request; checkpointed");
  }
  auto model = *Transformer::Create(Small());
  model->InitializeParameters(1);
  auto resumed = ZoTrainer::Create(model.get(), &corpus, nullptr, Options(TmpDir("zo_stopped")));
  ASSERT_TRUE((*resumed)->Run(quiet).ok());
  EXPECT_EQ(std::memcmp(model->params().data(), full->params().data(),
                        full->params().size() * sizeof(float)),
            0);
}

TEST(ZoTrainerTest, CorruptedNewestCheckpointFallsBackAndReplaysMore) {
  const TokenCorpus corpus = Text();
  auto quiet = [](const std::string&) {};
  auto full = *Transformer::Create(Small());
  full->InitializeParameters(1);
  ASSERT_TRUE((*ZoTrainer::Create(full.get(), &corpus, nullptr, Options(TmpDir("zo_full2"))))
                  ->Run(quiet)
                  .ok());
  {
    auto model = *Transformer::Create(Small());
    model->InitializeParameters(1);
    auto b = ZoTrainer::Create(model.get(), &corpus, nullptr, Options(TmpDir("zo_corrupt")));
    ASSERT_TRUE((*b)->Resume(quiet).ok());
    for (int s = 1; s <= 25; ++s) {
      ASSERT_TRUE((*b)->Step().ok());
      if (s % 10 == 0) {
        ASSERT_TRUE((*b)->SaveCheckpoint().ok());
      }
    }
  }
  // Damage the newest checkpoint (step 20): resume must use step 10 and replay 15 steps.
  {
    std::fstream f(TmpDir("zo_corrupt") + "/ckpt-0000000020/model.safetensors",
                   std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(-64, std::ios::end);
    f.put('\x55');
  }
  auto resumed = *Transformer::Create(Small());
  auto c = ZoTrainer::Create(resumed.get(), &corpus, nullptr, Options(TmpDir("zo_corrupt")));
  std::vector<std::string> log;
  ASSERT_TRUE((*c)->Run([&log](const std::string& l) { log.push_back(l); }).ok());
  ASSERT_GE(log.size(), 2u);
  EXPECT_NE(log[0].find("fails its checksum"), std::string::npos) << log[0];
  EXPECT_NE(log[1].find("replayed 15 logged steps: at step 25"), std::string::npos) << log[1];
  EXPECT_EQ(0, std::memcmp(full->params().data(), resumed->params().data(),
                           full->params().size() * sizeof(float)));
}

TEST(ZoTrainerTest, OffloadedTrainingMatchesInMemoryAndResumesExactly) {
  const TokenCorpus corpus = Text();
  auto quiet = [](const std::string&) {};
  ZoTrainerOptions options = Options(TmpDir("zo_mem_sgd"));
  options.zo.variant = zo::ZoVariant::kSgd;
  auto reference = *Transformer::Create(Small());
  reference->InitializeParameters(1);
  auto reference_trainer = *ZoTrainer::Create(reference.get(), &corpus, &corpus, options);
  ASSERT_TRUE(reference_trainer->Run(quiet).ok());

  for (OffloadedZo::Tier tier : {OffloadedZo::Tier::kNvme, OffloadedZo::Tier::kCpu}) {
    SCOPED_TRACE(tier == OffloadedZo::Tier::kCpu ? "cpu tier" : "nvme tier");
    const std::string name = tier == OffloadedZo::Tier::kCpu ? "zo_offload_cpu" : "zo_offload";
    ZoTrainerOptions offloaded = options;
    offloaded.checkpoint_dir = TmpDir(name);
    offloaded.offload = OffloadedZo::Options();
    offloaded.offload->tier = tier;
    offloaded.offload->nvme_paths = {TmpDir(name + "_nvme")};
    {
      auto model = *Transformer::Create(Small());
      model->InitializeParameters(1);
      auto b = ZoTrainer::Create(model.get(), &corpus, nullptr, offloaded);
      ASSERT_TRUE(b.ok()) << b.status();
      ASSERT_TRUE((*b)->Resume(quiet).ok());
      for (int s = 1; s <= 25; ++s) {
        ASSERT_TRUE((*b)->Step().ok());
        if (s % 10 == 0) {
          ASSERT_TRUE((*b)->SaveCheckpoint().ok());
        }
      }
    }
    auto model = *Transformer::Create(Small());
    auto c = ZoTrainer::Create(model.get(), &corpus, &corpus, offloaded);
    std::vector<std::string> log;
    ASSERT_TRUE((*c)->Run([&log](const std::string& l) { log.push_back(l); }).ok());
    EXPECT_NE(log[0].find("replayed 5 logged steps: at step 25"), std::string::npos) << log[0];
    // Evaluation streams the blocks (they stay on their tier) and gives the in-memory loss bit
    // for bit.
    absl::StatusOr<EvalResult> streamed_eval = (*c)->Evaluate();
    ASSERT_TRUE(streamed_eval.ok()) << streamed_eval.status();
    EXPECT_EQ(streamed_eval->loss, reference_trainer->Evaluate()->loss);
    auto final_weights = LoadHfCheckpoint(TmpDir(name) + "/ckpt-0000000040");
    ASSERT_TRUE(final_weights.ok()) << final_weights.status();
    EXPECT_EQ(0, std::memcmp(reference->params().data(), (*final_weights)->params().data(),
                             reference->params().size() * sizeof(float)));
  }
}

// Prompts of 6 letters from "abcd"; the label after the last letter is 'x' when that letter is
// 'a' or 'b', 'y' otherwise. Only the label position has a target.
struct Task {
  std::vector<int32_t> tokens, targets;
  int n = 0;
};

Task MakeTask(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  Task t;
  t.n = n;
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < 6; ++j) {
      const int32_t letter = 'a' + static_cast<int32_t>(rng() % 4);
      t.tokens.push_back(letter);
      t.targets.push_back(j == 5 ? (letter <= 'b' ? 'x' : 'y') : -100);
    }
  }
  return t;
}

double Accuracy(Transformer& model, const Task& task) {
  std::vector<float> logits(static_cast<size_t>(task.n) * 6 * 257);
  EXPECT_TRUE(model.Logits(task.tokens, task.n, 6, logits.data()).ok());
  int correct = 0;
  for (int i = 0; i < task.n; ++i) {
    const float* row = logits.data() + (static_cast<size_t>(i) * 6 + 5) * 257;
    const int32_t label = task.targets[i * 6 + 5];
    const int32_t other = label == 'x' ? 'y' : 'x';
    correct += row[label] > row[other];
  }
  return static_cast<double>(correct) / task.n;
}

// A model pretrained on English text with the first-order loop (once; each test copies it).
const std::vector<float>& PretrainedWeights() {
  static const std::vector<float>* weights = [] {
    const TokenCorpus corpus = Text();
    auto model = *Transformer::Create(Small());
    model->InitializeParameters(5);
    FoTrainerOptions fo;
    fo.batch = 16;
    fo.seq = 32;
    fo.steps = 150;
    fo.lr = {LrSchedule::Kind::kCosine, 3e-3, 0, 0.1, 0};
    fo.log_every = 0;
    EXPECT_TRUE((*FoTrainer::Create(model.get(), &corpus, nullptr, fo))->Run([](auto&) {}).ok());
    return new std::vector<float>(model->params().begin(), model->params().end());
  }();
  return *weights;
}

std::unique_ptr<Transformer> Pretrained() {
  auto model = *Transformer::Create(Small());
  const std::vector<float>& weights = PretrainedWeights();
  std::copy(weights.begin(), weights.end(), model->params().begin());
  return model;
}

// MeZO's LoRA placement: the query and value projections.
std::unique_ptr<LoraAdapters> QvAdapters(const Transformer& model) {
  LoraConfig config;
  config.target_modules = DefaultLoraTargets(model.config().family);
  auto lora = *LoraAdapters::Create(model.layout(), config);
  lora->Initialize(7);
  return lora;
}

constexpr int kFineTuneSteps = 400;

TEST(ZoTrainerTest, ZoFineTuningRaisesHeldOutAccuracy) {
  auto model = Pretrained();
  const Task held_out = MakeTask(400, 2);
  const double before = Accuracy(*model, held_out);
  zo::ZoConfig config;
  config.seed = 3;
  config.eps = 1e-3f;
  auto opt = zo::ZoOptimizer::Create(model.get(), config);
  ASSERT_TRUE(opt.ok());
  for (int step = 1; step <= kFineTuneSteps; ++step) {
    const Task batch = MakeTask(16, 1000 + step);
    ASSERT_TRUE((*opt)->Step(batch.tokens, batch.targets, batch.n, 6, step, 1e-3).ok());
  }
  (*opt)->Flush();
  const double after = Accuracy(*model, held_out);
  std::printf("full ZO: held-out accuracy %.3f -> %.3f after %d steps\n", before, after,
              kFineTuneSteps);
  EXPECT_GE(after, before + 0.25);
}

TEST(ZoTrainerTest, ZoAdaptersFineTuningRaisesHeldOutAccuracy) {
  auto model = Pretrained();
  const std::vector<float> base(model->params().begin(), model->params().end());
  auto lora = QvAdapters(*model);
  const Task held_out = MakeTask(400, 2);
  const double before = Accuracy(*model, held_out);
  zo::ZoConfig config;
  config.seed = 3;
  config.eps = 1e-2f;  // MeZO's LoRA setting.
  auto engine = ZoAdapters::Create(model.get(), lora.get(), config);
  ASSERT_TRUE(engine.ok()) << engine.status();
  for (int step = 1; step <= kFineTuneSteps; ++step) {
    const Task batch = MakeTask(16, 1000 + step);
    ASSERT_TRUE((*engine)->Step(batch.tokens, batch.targets, batch.n, 6, step, 2e-2).ok());
  }
  const double after = Accuracy(*model, held_out);
  std::printf("ZO-LoRA: held-out accuracy %.3f -> %.3f after %d steps\n", before, after,
              kFineTuneSteps);
  EXPECT_GE(after, before + 0.25);
  EXPECT_EQ(std::memcmp(base.data(), model->params().data(), base.size() * sizeof(float)), 0);
}

TEST(ZoTrainerTest, FoLoraFineTuningRaisesHeldOutAccuracy) {
  auto model = Pretrained();
  const std::vector<float> base(model->params().begin(), model->params().end());
  auto lora = QvAdapters(*model);
  const Task held_out = MakeTask(400, 2);
  const double before = Accuracy(*model, held_out);
  AdapterAdamWUpdate update(*model, lora.get(), nullptr, {0.9f, 0.999f, 1e-8f, 0.0f}, 1.0);
  constexpr int kSteps = 60;
  for (int step = 1; step <= kSteps; ++step) {
    const Task batch = MakeTask(16, 1000 + step);
    update.BeginStep(*model);
    ASSERT_TRUE(model->ForwardBackward(batch.tokens, batch.targets, batch.n, 6).ok());
    ASSERT_TRUE(update.Step(*model, 1e-3f).ok());
  }
  const double after = Accuracy(*model, held_out);
  std::printf("FO-LoRA: held-out accuracy %.3f -> %.3f after %d steps\n", before, after, kSteps);
  EXPECT_GE(after, before + 0.25);
  EXPECT_EQ(model->GradientBytes(), 0);
  EXPECT_EQ(std::memcmp(base.data(), model->params().data(), base.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace strata
