// The trainers on a task: variable-length candidate rows (right-padded per batch) through every
// ZO engine and the first-order trainer. Offloaded ZO gives the in-memory run's step records and
// weights bit for bit; ZO-LoRA trains only the adapters; a run stopped and resumed from its
// checkpoint continues with the same batches and ends with the same weights; FO and ZO lower the
// task objective, and evaluations report the task's metrics.
#include <cstdlib>
#include <random>

#include "gtest/gtest.h"
#include "runtime/peft/lora_adapters.h"
#include "runtime/train/fo_trainer.h"
#include "runtime/train/zo_trainer.h"

namespace strata {
namespace {

std::string TmpDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return std::string(tmp ? tmp : "/tmp") + "/" + name;
}

ModelConfig Small() {
  ModelConfig c;
  c.family = ModelFamily::kGpt2;
  c.vocab_size = 61;
  c.max_seq_len = 24;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_kv_head = 4;
  c.d_model = 32;
  c.d_ff = 64;
  return c;
}

// A 3-class task whose answer is visible in the prompt: prompts of 3-9 tokens that hold the
// class's marker token (1, 2 or 3) somewhere, candidates of 1-2 tokens.
task::TaskData MakeTask(int n_train, int n_dev) {
  task::TaskData data;
  data.definition.kind = task::TaskKind::kClassification;
  data.definition.labels = {{"0", "a"}, {"1", "b"}, {"2", "c"}};
  std::mt19937 rng(9);
  auto make = [&](int n) {
    std::vector<task::TaskExample> out;
    for (int i = 0; i < n; ++i) {
      task::TaskExample e;
      e.label = static_cast<int>(rng() % 3);
      const int length = 3 + static_cast<int>(rng() % 7);
      for (int t = 0; t < length; ++t) e.prompt.push_back(10 + static_cast<int>(rng() % 50));
      e.prompt[rng() % length] = 1 + e.label;
      e.candidates = {{40}, {41, 42}, {43}};
      out.push_back(std::move(e));
    }
    return out;
  };
  data.train = make(n_train);
  data.dev = make(n_dev);
  return data;
}

std::unique_ptr<Transformer> Model() {
  auto model = *Transformer::Create(Small());
  model->InitializeParameters(5);
  return model;
}

ZoTrainerOptions ZoOptions(const task::TaskData* task) {
  ZoTrainerOptions o;
  o.zo.seed = 3;
  o.zo.eps = 1e-3f;
  o.batch = 6;
  o.seq = 12;
  o.steps = 12;
  o.lr = {LrSchedule::Kind::kConstant, 1e-3, 0, 0, 0};
  o.log_every = 0;
  o.task = task;
  return o;
}

std::vector<float> Weights(Transformer& model) {
  return std::vector<float>(model.params().begin(), model.params().end());
}

TEST(TaskTrainerTest, OffloadedZoOnATaskEqualsInMemoryBitForBit) {
  const task::TaskData task = MakeTask(60, 20);
  std::vector<zo::ZoStepRecord> memory_records, offload_records;
  auto memory = Model();
  ZoTrainerOptions a = ZoOptions(&task);
  a.on_step = [&](const zo::ZoStepRecord& r) { memory_records.push_back(r); };
  auto ta = ZoTrainer::Create(memory.get(), nullptr, nullptr, a);
  ASSERT_TRUE(ta.ok()) << ta.status();
  ASSERT_TRUE((*ta)->Run([](const std::string&) {}).ok());
  auto offloaded = Model();
  ZoTrainerOptions b = ZoOptions(&task);
  b.on_step = [&](const zo::ZoStepRecord& r) { offload_records.push_back(r); };
  b.offload = OffloadedZo::Options();
  b.offload->nvme_paths = {TmpDir("task_offload")};
  auto tb = ZoTrainer::Create(offloaded.get(), nullptr, nullptr, b);
  ASSERT_TRUE(tb.ok()) << tb.status();
  ASSERT_TRUE((*tb)->Run([](const std::string&) {}).ok());
  ASSERT_EQ(memory_records.size(), 12u);
  ASSERT_EQ(offload_records.size(), 12u);
  for (size_t i = 0; i < memory_records.size(); ++i) {
    EXPECT_EQ(memory_records[i].scalars, offload_records[i].scalars) << "step " << i + 1;
    EXPECT_EQ(memory_records[i].loss, offload_records[i].loss) << "step " << i + 1;
  }
  // The evaluations agree too (the offloaded one streams its blocks).
  absl::StatusOr<EvalResult> ea = (*ta)->Evaluate(), eb = (*tb)->Evaluate();
  ASSERT_TRUE(ea.ok() && eb.ok());
  EXPECT_EQ(ea->loss, eb->loss);
  EXPECT_EQ(ea->metrics, eb->metrics);
  EXPECT_EQ(ea->metrics.count("accuracy"), 1u);
}

TEST(TaskTrainerTest, ResumedTaskRunEndsWithTheSameWeights) {
  const task::TaskData task = MakeTask(30, 10);  // 5 batches an epoch: resumes cross epochs.
  auto whole = Model();
  ZoTrainerOptions a = ZoOptions(&task);
  a.checkpoint_dir = TmpDir("task_whole");
  ASSERT_TRUE((*ZoTrainer::Create(whole.get(), nullptr, nullptr, a))
                  ->Run([](const std::string&) {})
                  .ok());
  auto cut = Model();
  ZoTrainerOptions b = ZoOptions(&task);
  b.checkpoint_dir = TmpDir("task_cut");
  b.checkpoint_every = 7;
  int steps = 0;
  b.stop_requested = [&steps] { return ++steps == 7; };  // Stops after step 7, checkpointed.
  EXPECT_TRUE(absl::IsCancelled(
      (*ZoTrainer::Create(cut.get(), nullptr, nullptr, b))->Run([](const std::string&) {})));
  auto resumed = Model();
  b.stop_requested = nullptr;
  auto again = ZoTrainer::Create(resumed.get(), nullptr, nullptr, b);
  ASSERT_TRUE((*again)->Run([](const std::string&) {}).ok());
  EXPECT_EQ((*again)->step(), 12);
  EXPECT_EQ(Weights(*resumed), Weights(*whole));
}

TEST(TaskTrainerTest, ZoLoraTrainsOnlyTheAdapters) {
  const task::TaskData task = MakeTask(60, 20);
  auto model = Model();
  const std::vector<float> base = Weights(*model);
  LoraConfig config;
  config.target_modules = DefaultLoraTargets(model->config().family);
  auto lora = *LoraAdapters::Create(model->layout(), config);
  lora->Initialize(7);
  ZoTrainerOptions o = ZoOptions(&task);
  o.adapters = lora.get();
  o.lr = {LrSchedule::Kind::kConstant, 1e-2, 0, 0, 0};
  o.zo.eps = 1e-2f;
  const std::vector<float> before(lora->weights().begin(), lora->weights().end());
  auto trainer = ZoTrainer::Create(model.get(), nullptr, nullptr, o);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  ASSERT_TRUE((*trainer)->Run([](const std::string&) {}).ok());
  EXPECT_EQ(Weights(*model), base);
  EXPECT_NE(std::vector<float>(lora->weights().begin(), lora->weights().end()), before);
}

TEST(TaskTrainerTest, FirstOrderLearnsTheTask) {
  const task::TaskData task = MakeTask(120, 60);
  auto model = Model();
  FoTrainerOptions o;
  o.batch = 8;
  o.seq = 12;
  o.steps = 60;
  o.lr = {LrSchedule::Kind::kConstant, 3e-3, 0, 0, 0};
  o.log_every = 0;
  o.task = &task;
  auto trainer = FoTrainer::Create(model.get(), nullptr, nullptr, o);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const EvalResult before = *(*trainer)->Evaluate();
  ASSERT_TRUE((*trainer)->Run([](const std::string&) {}).ok());
  const EvalResult after = *(*trainer)->Evaluate();
  EXPECT_LT(after.loss, before.loss - 0.3) << before.loss << " -> " << after.loss;
  EXPECT_GT(after.metrics.at("accuracy"), before.metrics.at("accuracy") + 0.3)
      << before.metrics.at("accuracy") << " -> " << after.metrics.at("accuracy");
}

TEST(TaskTrainerTest, NonDifferentiableObjectiveIsZerothOrderOnly) {
  task::TaskData task = MakeTask(60, 20);
  task.definition.objective = task::TaskObjective::kAccuracy;
  auto model = Model();
  ZoTrainerOptions zo = ZoOptions(&task);
  auto trainer = ZoTrainer::Create(model.get(), nullptr, nullptr, zo);
  ASSERT_TRUE(trainer.ok());
  auto record = (*trainer)->Step();
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_GE(record->loss, 0.0f);  // 1 - accuracy of the batch.
  EXPECT_LE(record->loss, 1.0f);
  FoTrainerOptions fo;
  fo.batch = 6;
  fo.seq = 12;
  fo.steps = 2;
  fo.task = &task;
  auto first_order = FoTrainer::Create(model.get(), nullptr, nullptr, fo);
  ASSERT_TRUE(first_order.ok());
  absl::StatusOr<StepStats> step = (*first_order)->Step();
  ASSERT_FALSE(step.ok());
  EXPECT_NE(step.status().message().find("no gradient"), std::string::npos) << step.status();
}

}  // namespace
}  // namespace strata
