// strata-train's half of the job contract, on a small model and the GPL text Debian ships:
// the trainers' options are the RunConfig's values field for field; a ZO job with a constant lr
// runs that lr at every step and a LINEAR schedule follows its formula; keep_last is the number
// of checkpoints left; resume_from continues another run's checkpoint to the uninterrupted
// run's weights bit for bit, and a bad resume_from fails before any step, naming the path.
#include "services/trainer/run_training.h"

#include <dirent.h>
#include <sys/stat.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/model/model_config.h"
#include "runtime/model/transformer.h"
#include "runtime/peft/peft_checkpoint.h"
#include "services/jobspec/run_config_builder.h"
#include "tests/testing/subprocess.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

std::string TmpDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return std::string(tmp ? tmp : "/tmp") + "/" + name;
}

v1::JobSpec ZoJob(const std::string& name) {
  v1::JobSpec spec;
  spec.set_name(name);
  spec.mutable_model()->set_config_json(::strata::testing::kTinyLlamaConfigJson);
  spec.mutable_data()->add_train_paths("/usr/share/common-licenses/GPL-3");
  spec.mutable_data()->set_format(v1::DATA_FORMAT_TEXT);
  spec.mutable_data()->set_batch_size(2);
  spec.mutable_data()->set_seq_len(16);
  spec.mutable_data()->set_eval_batches(1);
  spec.mutable_optimizer()->mutable_zeroth_order()->set_lr(1e-5);
  spec.mutable_training()->set_max_steps(20);
  spec.mutable_training()->set_log_interval(1000);
  spec.mutable_training()->set_seed(4);
  return spec;
}

absl::StatusOr<v1::RunConfig> Build(const v1::JobSpec& spec, const std::string& dir) {
  RankSite site;
  site.job_id = spec.name();
  site.job_dir = dir;
  return BuildRunConfig(spec, site);
}

// Runs `run`; returns what it reported.
absl::StatusOr<std::vector<v1::RankReport>> Reports(const v1::RunConfig& run) {
  std::vector<v1::RankReport> reports;
  TrainingOutput out;
  out.report = [&](const v1::RankReport& r) { reports.push_back(r); };
  absl::Status status = RunTraining(run, out);
  if (!status.ok()) return status;
  return reports;
}

// Runs `run`; returns the ZO step records it reported.
absl::StatusOr<std::vector<v1::ZoStepRecord>> Train(const v1::RunConfig& run) {
  absl::StatusOr<std::vector<v1::RankReport>> reports = Reports(run);
  if (!reports.ok()) return reports.status();
  std::vector<v1::ZoStepRecord> records;
  for (const v1::RankReport& r : *reports) {
    if (r.has_zo_step()) records.push_back(r.zo_step());
  }
  return records;
}

// Runs `run` and asks it to stop once ZO step `step` is reported: it checkpoints and returns
// CANCELLED, like a job cancelled mid-way.
void StopAfterStep(const v1::RunConfig& run, int64_t step) {
  std::atomic<bool> stop{false};
  TrainingOutput out;
  out.stop_requested = &stop;
  out.report = [&stop, step](const v1::RankReport& r) {
    if (r.has_zo_step() && r.zo_step().step() == step) stop = true;
  };
  EXPECT_EQ(RunTraining(run, out).code(), absl::StatusCode::kCancelled);
}

std::vector<std::string> Checkpoints(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name.rfind("ckpt-", 0) == 0) names.push_back(name);
    }
    closedir(d);
  }
  return names;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(RunTrainingTest, OptionsAreTheRunConfigsValues) {
  v1::JobSpec spec = ZoJob("map");
  v1::ZerothOrderSpec* zo = spec.mutable_optimizer()->mutable_zeroth_order();
  zo->set_variant(v1::ZO_VARIANT_ADAM);
  zo->set_beta1(0.8);
  zo->set_beta2(0.95);
  zo->set_adam_epsilon(1e-6);
  zo->set_keep_nonfinite_steps(true);
  spec.mutable_data()->set_shuffle_seed(77);
  spec.mutable_checkpoint()->set_keep_last(1);
  auto run = Build(spec, TmpDir("map"));
  ASSERT_TRUE(run.ok()) << run.status();
  auto o = ZoOptionsFor(*run);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->zo.variant, zo::ZoVariant::kAdam);
  EXPECT_EQ(o->zo.beta1, 0.8f);
  EXPECT_EQ(o->zo.beta2, 0.95f);
  EXPECT_EQ(o->zo.adam_eps, 1e-6f);
  EXPECT_FALSE(o->zo.skip_nonfinite);
  EXPECT_EQ(o->zo.seed, 4u);
  EXPECT_EQ(o->data_seed, 77u);
  EXPECT_EQ(o->keep_checkpoints, 1);
  EXPECT_EQ(o->lr.kind, LrSchedule::Kind::kConstant);
  EXPECT_EQ(o->lr.lr, 1e-5);
  EXPECT_EQ(o->lr.warmup_steps, 0);

  v1::JobSpec fo_spec = ZoJob("map-fo");
  fo_spec.mutable_optimizer()->mutable_adamw()->set_lr(2e-3);
  fo_spec.mutable_optimizer()->mutable_adamw()->set_beta2(0.95);
  fo_spec.mutable_optimizer()->mutable_adamw()->set_epsilon(1e-7);
  fo_spec.mutable_optimizer()->mutable_schedule()->set_kind(v1::LR_SCHEDULE_KIND_LINEAR);
  fo_spec.mutable_optimizer()->mutable_schedule()->set_min_lr_ratio(0.5);
  auto fo_run = Build(fo_spec, TmpDir("map-fo"));
  ASSERT_TRUE(fo_run.ok()) << fo_run.status();
  auto fo = FoOptionsFor(*fo_run);
  ASSERT_TRUE(fo.ok()) << fo.status();
  EXPECT_EQ(fo->lr.kind, LrSchedule::Kind::kLinear);
  EXPECT_EQ(fo->lr.min_lr_ratio, 0.5);
  EXPECT_EQ(fo->beta1, 0.9f);
  EXPECT_EQ(fo->beta2, 0.95f);
  EXPECT_EQ(fo->adam_eps, 1e-7f);
  EXPECT_EQ(fo->grad_clip, 0.0f);  // The proto's default: no clipping.
  EXPECT_EQ(fo->keep_checkpoints, 3);
}

// Pre-tokenized data is checked against the model's vocabulary (its largest id), not against the
// byte tokenizer's size; text still needs a tokenizer whose ids fit the model.
TEST(RunTrainingTest, PreTokenizedDataNeedsOnlyIdsTheModelHas) {
  const std::string dir = TmpDir("u16");
  mkdir(dir.c_str(), 0755);
  const std::string tokens = dir + "/tokens.bin";
  {
    std::ofstream out(tokens, std::ios::binary);
    for (int i = 0; i < 4096; ++i) {
      const uint16_t id = static_cast<uint16_t>((i * 7) % 101);
      out.write(reinterpret_cast<const char*>(&id), 2);
    }
  }
  constexpr char kVocab101[] =
      R"({"model_type": "llama", "vocab_size": 101, "hidden_size": 16, "intermediate_size": 32,
          "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 32})";
  v1::JobSpec spec = ZoJob("u16");
  spec.mutable_model()->set_config_json(kVocab101);
  spec.mutable_data()->clear_train_paths();
  spec.mutable_data()->add_train_paths(tokens);
  spec.mutable_data()->set_format(v1::DATA_FORMAT_TOKENS_U16);
  spec.mutable_training()->set_max_steps(2);
  auto run = Build(spec, dir + "/job");
  ASSERT_TRUE(run.ok()) << run.status();
  absl::StatusOr<std::vector<v1::ZoStepRecord>> records = Train(*run);
  ASSERT_TRUE(records.ok()) << records.status();
  EXPECT_EQ(records->size(), 2u);
  // An id the model lacks is refused with its position.
  {
    std::ofstream out(tokens, std::ios::binary | std::ios::app);
    const uint16_t id = 101;
    out.write(reinterpret_cast<const char*>(&id), 2);
  }
  EXPECT_THAT(Train(*run).status().message(), HasSubstr("token 4096 = 101 is outside"));
  // Text with the byte tokenizer (257 ids) on this model is refused up front.
  spec.mutable_data()->clear_train_paths();
  spec.mutable_data()->add_train_paths("/usr/share/common-licenses/GPL-3");
  spec.mutable_data()->set_format(v1::DATA_FORMAT_TEXT);
  auto text = Build(spec, dir + "/text");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(Train(*text).status().message(), HasSubstr("smaller than the tokenizer's (257)"));
}

TEST(RunTrainingTest, ConstantLrIsTheRequestedLrAtEveryStep) {
  v1::JobSpec spec = ZoJob("constant");
  spec.mutable_training()->set_log_interval(1);
  auto run = Build(spec, TmpDir("constant"));
  ASSERT_TRUE(run.ok()) << run.status();
  auto reports = Reports(*run);
  ASSERT_TRUE(reports.ok()) << reports.status();
  int progress = 0, steps = 0, evals = 0;
  for (const v1::RankReport& r : *reports) {
    if (r.has_progress()) {
      ++progress;
      EXPECT_EQ(r.progress().step(), progress);
      EXPECT_EQ(r.progress().lr(), 1e-5) << "progress of step " << r.progress().step();
      EXPECT_EQ(r.progress().tokens_total(), progress * 2 * 16);
    }
    if (r.has_zo_step()) {
      ++steps;
      EXPECT_EQ(r.zo_step().lr(), 1e-5) << "step " << r.zo_step().step();
    }
    if (r.has_eval()) {
      ++evals;
      EXPECT_EQ(r.eval().step(), 20);
      EXPECT_TRUE(std::isfinite(r.eval().loss()));
    }
  }
  EXPECT_EQ(progress, 20);
  EXPECT_EQ(steps, 20);
  EXPECT_GE(evals, 1);
}

TEST(RunTrainingTest, LinearScheduleFollowsItsFormula) {
  v1::JobSpec spec = ZoJob("linear");
  spec.mutable_optimizer()->mutable_schedule()->set_kind(v1::LR_SCHEDULE_KIND_LINEAR);
  spec.mutable_optimizer()->mutable_schedule()->set_warmup_steps(4);
  spec.mutable_optimizer()->mutable_schedule()->set_min_lr_ratio(0.25);
  auto run = Build(spec, TmpDir("linear"));
  ASSERT_TRUE(run.ok()) << run.status();
  auto records = Train(*run);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 20u);
  for (const v1::ZoStepRecord& r : *records) {
    const int64_t k = r.step() - 1;  // 0-based index of the step.
    const double expected =
        k < 4 ? 1e-5 * (k + 1) / 4.0 : 0.25e-5 + 0.75e-5 * (1.0 - (k - 4) / 16.0);
    EXPECT_NEAR(r.lr(), expected, 1e-18) << "step " << r.step();
  }
}

TEST(RunTrainingTest, KeepLastLeavesThatManyCheckpoints) {
  v1::JobSpec spec = ZoJob("keep");
  spec.mutable_checkpoint()->set_interval_steps(5);
  spec.mutable_checkpoint()->set_keep_last(1);
  const std::string dir = TmpDir("keep");
  auto run = Build(spec, dir);
  ASSERT_TRUE(run.ok()) << run.status();
  auto reports = Reports(*run);
  ASSERT_TRUE(reports.ok()) << reports.status();
  EXPECT_THAT(Checkpoints(dir + "/checkpoints"), ::testing::ElementsAre("ckpt-0000000020"));
  // Every committed checkpoint was reported with its step and directory (0, 5, ..., 20).
  std::vector<int64_t> reported;
  for (const v1::RankReport& r : *reports) {
    if (!r.has_checkpoint()) continue;
    reported.push_back(r.checkpoint().step());
    EXPECT_EQ(r.checkpoint().path(),
              absl::StrFormat("%s/checkpoints/ckpt-%010d", dir, r.checkpoint().step()));
  }
  EXPECT_THAT(reported, ::testing::ElementsAre(0, 5, 10, 15, 20));
}

TEST(RunTrainingTest, ResumeFromContinuesAnotherRunBitForBit) {
  // The uninterrupted run: 20 steps, checkpoints every 10 (all kept), exported at the end.
  v1::JobSpec whole = ZoJob("whole");
  whole.mutable_checkpoint()->set_interval_steps(10);
  whole.mutable_checkpoint()->set_keep_last(5);
  whole.mutable_checkpoint()->set_export_safetensors(true);
  const std::string whole_dir = TmpDir("whole");
  auto whole_run = Build(whole, whole_dir);
  ASSERT_TRUE(whole_run.ok()) << whole_run.status();
  ASSERT_TRUE(Train(*whole_run).ok());
  // A second job starting from the first one's step-10 checkpoint.
  v1::JobSpec resumed = whole;
  resumed.set_name("resumed");
  resumed.mutable_checkpoint()->set_resume_from(whole_dir + "/checkpoints/ckpt-0000000010");
  const std::string resumed_dir = TmpDir("resumed");
  auto resumed_run = Build(resumed, resumed_dir);
  ASSERT_TRUE(resumed_run.ok()) << resumed_run.status();
  auto records = Train(*resumed_run);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 10u);  // Steps 11-20 only.
  EXPECT_EQ(records->front().step(), 11);
  const std::string a = ReadAll(whole_dir + "/checkpoints/export/model.safetensors");
  const std::string b = ReadAll(resumed_dir + "/checkpoints/export/model.safetensors");
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "resumed weights differ from the uninterrupted run's";

  // A path that is not a checkpoint: refused before any step, naming it.
  resumed.mutable_checkpoint()->set_resume_from(whole_dir + "/nothing-here");
  auto bad_run = Build(resumed, TmpDir("bad"));
  ASSERT_TRUE(bad_run.ok());
  auto bad = Train(*bad_run);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("spec.checkpoint.resume_from"));
  EXPECT_THAT(bad.status().message(), HasSubstr(whole_dir + "/nothing-here"));
  EXPECT_TRUE(Checkpoints(TmpDir("bad") + "/checkpoints").empty());
}

// A ZO job with peft.lora trains the adapters only: checkpoints and the export are PEFT adapter
// directories, and a run stopped mid-way and started again ends with the uninterrupted run's
// adapters bit for bit.
TEST(RunTrainingTest, LoraJobExportsAdaptersAndResumesBitForBit) {
  v1::JobSpec spec = ZoJob("lora");
  spec.mutable_peft()->mutable_lora()->set_r(4);
  spec.mutable_optimizer()->mutable_zeroth_order()->set_lr(1e-3);
  spec.mutable_checkpoint()->set_interval_steps(5);
  spec.mutable_checkpoint()->set_export_safetensors(true);
  const std::string whole_dir = TmpDir("lora_whole");
  auto whole = Build(spec, whole_dir);
  ASSERT_TRUE(whole.ok()) << whole.status();
  auto records = Train(*whole);
  ASSERT_TRUE(records.ok()) << records.status();
  EXPECT_EQ(records->size(), 20u);
  const std::string export_dir = whole_dir + "/checkpoints/export";
  const std::string adapters = ReadAll(export_dir + "/adapter_model.safetensors");
  ASSERT_FALSE(adapters.empty());
  EXPECT_THAT(ReadAll(export_dir + "/adapter_config.json"), HasSubstr("\"peft_type\": \"LORA\""));
  EXPECT_TRUE(ReadAll(export_dir + "/model.safetensors").empty()) << "the base is not exported";

  // Stopped after step 7 (checkpoint at 5, steps 6-7 in the log), then run again.
  const std::string cut_dir = TmpDir("lora_cut");
  auto cut = Build(spec, cut_dir);
  ASSERT_TRUE(cut.ok());
  StopAfterStep(*cut, 7);
  auto rest = Train(*cut);
  ASSERT_TRUE(rest.ok()) << rest.status();
  // The resumed run reports the 7 steps of its local log first (its keeper may lack them: no
  // replay log was given), then the new ones: every step once, in order.
  ASSERT_EQ(rest->size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ((*rest)[i].step(), i + 1);
  EXPECT_TRUE(ReadAll(cut_dir + "/checkpoints/export/adapter_model.safetensors") == adapters)
      << "resumed adapters differ from the uninterrupted run's";

  // The same job with the base offloaded to NVMe (streamed read-only) trains the same bits.
  v1::JobSpec offloaded = spec;
  offloaded.mutable_offload()->set_param_tier(v1::TIER_NVME);
  RankSite site;
  site.job_id = "lora_nvme";
  site.job_dir = TmpDir("lora_nvme");
  site.nvme_dirs = {TmpDir("lora_nvme_blocks")};
  auto offloaded_run = BuildRunConfig(offloaded, site);
  ASSERT_TRUE(offloaded_run.ok()) << offloaded_run.status();
  std::vector<std::string> lines;
  TrainingOutput out2;
  out2.log = [&lines](const std::string& line) { lines.push_back(line); };
  ASSERT_TRUE(RunTraining(*offloaded_run, out2).ok());
  EXPECT_TRUE(ReadAll(site.job_dir + "/checkpoints/export/adapter_model.safetensors") == adapters)
      << "offloaded ZO-LoRA differs from ZO-LoRA in memory";
}

// A first-order job with peft.lora: AdamW over the adapters, the export a PEFT directory that
// loads onto the base, and no full checkpoint of the base anywhere.
TEST(RunTrainingTest, FirstOrderLoraJobExportsAdapters) {
  v1::JobSpec spec = ZoJob("fo_lora");
  spec.mutable_optimizer()->clear_zeroth_order();
  spec.mutable_optimizer()->mutable_adamw()->set_lr(1e-3);
  spec.mutable_peft()->mutable_lora()->add_target_modules("all-linear");
  spec.mutable_checkpoint()->set_interval_steps(10);
  spec.mutable_checkpoint()->set_export_safetensors(true);
  const std::string dir = TmpDir("fo_lora");
  auto run = Build(spec, dir);
  ASSERT_TRUE(run.ok()) << run.status();
  std::vector<std::string> lines;
  TrainingOutput out;
  out.log = [&lines](const std::string& line) { lines.push_back(line); };
  ASSERT_TRUE(RunTraining(*run, out).ok());
  const std::string all = absl::StrJoin(lines, "\n");
  EXPECT_THAT(all, HasSubstr("LoRA r=8 alpha=16"));
  EXPECT_THAT(all, HasSubstr("AdamW over"));
  const std::string export_dir = dir + "/checkpoints/export";
  EXPECT_THAT(ReadAll(export_dir + "/adapter_config.json"), HasSubstr("\"peft_type\": \"LORA\""));
  EXPECT_TRUE(ReadAll(export_dir + "/model.safetensors").empty()) << "the base is not exported";
  auto base = Transformer::Create(*ParseHfConfig(::strata::testing::kTinyLlamaConfigJson, "tiny"));
  ASSERT_TRUE(base.ok());
  auto adapters = LoadLoraAdapter(export_dir, (*base)->layout());
  ASSERT_TRUE(adapters.ok()) << adapters.status();
  double moved = 0;  // B starts at zero.
  for (const TensorInfo& t : (*adapters)->tensors()) {
    if (t.name.find("lora_B") == std::string::npos) continue;
    for (int64_t i = 0; i < t.numel; ++i) {
      moved = std::max(moved, std::fabs(double{(*adapters)->weights()[t.offset + i]}));
    }
  }
  EXPECT_GT(moved, 0);
}

// Prefix jobs: ZO (stopped mid-way and resumed to the uninterrupted run's bits) and FO both
// export a PEFT PREFIX_TUNING directory; the prefix starts from the model's activations.
TEST(RunTrainingTest, PrefixJobsExportAPrefixAndResumeBitForBit) {
  v1::JobSpec spec = ZoJob("prefix");
  spec.mutable_peft()->mutable_prefix()->set_num_tokens(3);
  spec.mutable_peft()->mutable_prefix()->set_init_from_activations(true);
  spec.mutable_optimizer()->mutable_zeroth_order()->set_lr(1e-3);
  spec.mutable_optimizer()->mutable_zeroth_order()->set_epsilon(1e-1);
  spec.mutable_checkpoint()->set_interval_steps(5);
  spec.mutable_checkpoint()->set_export_safetensors(true);
  const std::string whole_dir = TmpDir("prefix_whole");
  auto whole = Build(spec, whole_dir);
  ASSERT_TRUE(whole.ok()) << whole.status();
  ASSERT_TRUE(Train(*whole).ok());
  const std::string prefix = ReadAll(whole_dir + "/checkpoints/export/adapter_model.safetensors");
  ASSERT_FALSE(prefix.empty());
  EXPECT_THAT(ReadAll(whole_dir + "/checkpoints/export/adapter_config.json"),
              HasSubstr("\"peft_type\": \"PREFIX_TUNING\""));
  const std::string cut_dir = TmpDir("prefix_cut");
  auto cut = Build(spec, cut_dir);
  ASSERT_TRUE(cut.ok());
  StopAfterStep(*cut, 7);
  ASSERT_TRUE(Train(*cut).ok());
  EXPECT_TRUE(ReadAll(cut_dir + "/checkpoints/export/adapter_model.safetensors") == prefix)
      << "the resumed prefix differs from the uninterrupted run's";

  v1::JobSpec first_order = spec;
  first_order.mutable_optimizer()->clear_zeroth_order();
  first_order.mutable_optimizer()->mutable_adamw()->set_lr(1e-3);
  const std::string fo_dir = TmpDir("prefix_fo");
  auto fo = Build(first_order, fo_dir);
  ASSERT_TRUE(fo.ok()) << fo.status();
  std::vector<std::string> lines;
  TrainingOutput fo_out;
  fo_out.log = [&lines](const std::string& line) { lines.push_back(line); };
  ASSERT_TRUE(RunTraining(*fo, fo_out).ok());
  EXPECT_THAT(absl::StrJoin(lines, "\n"), HasSubstr("prefix tuning: 3 virtual tokens"));
  auto base = Transformer::Create(*ParseHfConfig(::strata::testing::kTinyLlamaConfigJson, "tiny"));
  auto loaded = LoadAdapters(fo_dir + "/checkpoints/export", (*base)->layout());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->kind(), TrainableAdapters::Kind::kPrefix);
}

}  // namespace
}  // namespace strata
