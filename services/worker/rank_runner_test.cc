// TrainArgs (JobSpec -> strata-train flags) for ZO, offloaded ZO and FO specs, the fields it
// refuses by name, and ParseTrainLine on strata-train's progress, evaluation and other lines.
#include "services/worker/rank_runner.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

RankDirs Dirs(std::string job_dir, std::vector<std::string> nvme = {}) {
  RankDirs dirs;
  dirs.job_dir = std::move(job_dir);
  dirs.nvme_dirs = std::move(nvme);
  return dirs;
}

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

v1::StartRank ZoStart() {
  v1::StartRank s;
  s.mutable_ref()->set_job_id("j-1");
  s.mutable_ref()->set_attempt(2);
  s.set_world_size(1);
  v1::JobSpec& spec = *s.mutable_spec();
  spec.mutable_model()->set_config_json("{\"model_type\": \"gpt2\"}");
  spec.mutable_data()->add_train_paths("/d/a.txt");
  spec.mutable_data()->add_train_paths("/d/b.txt");
  spec.mutable_data()->set_batch_size(4);
  spec.mutable_data()->set_seq_len(64);
  spec.mutable_data()->set_format(v1::DATA_FORMAT_TEXT);
  v1::ZerothOrderSpec& zo = *spec.mutable_optimizer()->mutable_zeroth_order();
  zo.set_lr(1e-4);
  zo.set_epsilon(1e-3);
  zo.set_variant(v1::ZO_VARIANT_SGD_SIGN);
  zo.set_estimator(v1::ZO_ESTIMATOR_ONE_SIDED);
  spec.mutable_training()->set_max_steps(200);
  spec.mutable_training()->set_seed(9);
  spec.mutable_checkpoint()->set_interval_steps(50);
  return s;
}

TEST(TrainArgsTest, ZeroOrderJob) {
  RankDirs dirs = Dirs("/work/jobs/j-1");
  auto args = TrainArgs(ZoStart(), dirs);
  ASSERT_TRUE(args.ok()) << args.status();
  for (const char* expected :
       {"--model_config=/work/jobs/j-1/model_config.json", "--seed=9", "--data=/d/a.txt,/d/b.txt",
        "--format=text", "--batch=4", "--seq=64", "--steps=200", "--optimizer=zo",
        "--zo_variant=sign", "--one_sided", "--lr=0.0001", "--eps=0.001",
        "--checkpoint_dir=/work/jobs/j-1/checkpoints", "--checkpoint_every=50", "--threads=1",
        "--report_steps"}) {
    EXPECT_THAT(*args, Contains(std::string(expected)));
  }
  EXPECT_THAT(*args, Not(Contains(HasSubstr("--offload"))));
}

TEST(TrainArgsTest, OffloadedZoOnTheWorkersNvmeWithAGpu) {
  v1::StartRank s = ZoStart();
  s.mutable_spec()->mutable_offload()->set_param_tier(v1::TIER_NVME);
  s.mutable_spec()->mutable_offload()->set_memory_budget_bytes(1 << 30);
  s.mutable_spec()->mutable_offload()->set_storage_dtype(v1::DTYPE_BF16);
  s.mutable_spec()->mutable_checkpoint()->set_path("/shared/ckpt");
  s.add_gpu_indices(3);
  auto args = TrainArgs(s, Dirs("/w/j", {"/nvme0/j-1-rank0", "/nvme1/j-1-rank0"}));
  ASSERT_TRUE(args.ok()) << args.status();
  for (const char* expected :
       {"--offload_dirs=/nvme0/j-1-rank0,/nvme1/j-1-rank0", "--memory_budget_bytes=1073741824",
        "--offload_bf16", "--offload_gpu=3", "--checkpoint_dir=/shared/ckpt"}) {
    EXPECT_THAT(*args, Contains(std::string(expected)));
  }
  // No NVMe paths on this worker: refused, naming the field.
  auto refused = TrainArgs(s, Dirs("/w/j"));
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("spec.offload.param_tier"));
}

TEST(TrainArgsTest, FirstOrderJobAndRefusedFields) {
  v1::StartRank s = ZoStart();
  s.mutable_spec()->mutable_optimizer()->mutable_adamw()->set_lr(3e-3);
  s.mutable_spec()->mutable_optimizer()->mutable_schedule()->set_min_lr_ratio(0.1);
  s.mutable_spec()->mutable_optimizer()->mutable_schedule()->set_warmup_steps(30);
  s.mutable_spec()->mutable_checkpoint()->set_export_safetensors(true);
  auto args = TrainArgs(s, Dirs("/w/j"));
  ASSERT_TRUE(args.ok()) << args.status();
  for (const char* expected : {"--optimizer=adamw", "--lr=0.003", "--min_lr=0.0003", "--warmup=30",
                               "--save_dir=/w/j/checkpoints/export"}) {
    EXPECT_THAT(*args, Contains(std::string(expected)));
  }
  s.mutable_spec()->mutable_data()->add_eval_paths("/d/eval.txt");
  EXPECT_THAT(TrainArgs(s, Dirs("/w/j")).status().message(), HasSubstr("spec.data.eval_paths"));
  s = ZoStart();
  s.set_world_size(2);
  EXPECT_THAT(TrainArgs(s, Dirs("/w/j")).status().message(), HasSubstr("spec.resources.ranks"));
}

TEST(TrainArgsTest, MultiRankJobsMeetThroughTheCoordinator) {
  v1::StartRank s = ZoStart();
  s.mutable_spec()->mutable_optimizer()->mutable_adamw()->set_lr(1e-3);
  s.set_world_size(2);
  s.set_rendezvous_prefix("j-1/3");
  RankDirs dirs = Dirs("/w/j");
  dirs.coordinator = "coord:7070";
  dirs.tls_ca = "/etc/strata/ca.pem";
  auto args = TrainArgs(s, dirs);
  ASSERT_TRUE(args.ok()) << args.status();
  for (const char* expected : {"--world_size=2", "--rendezvous_coordinator=coord:7070",
                               "--tls_ca=/etc/strata/ca.pem", "--rendezvous_prefix=j-1/3"}) {
    EXPECT_THAT(*args, Contains(std::string(expected)));
  }
  // No coordinator to meet through: only a shared checkpoint path will do.
  dirs.coordinator.clear();
  EXPECT_THAT(TrainArgs(s, dirs).status().message(), HasSubstr("spec.checkpoint.path"));
  s.mutable_spec()->mutable_checkpoint()->set_path("/shared/ck");
  args = TrainArgs(s, dirs);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_THAT(*args, Contains(std::string("--rendezvous_dir=/shared/ck/rendezvous")));
}

TEST(TrainArgsTest, FirstOrderOptimizerStateOnTheWorkersNvme) {
  v1::StartRank s = ZoStart();
  s.mutable_spec()->mutable_optimizer()->mutable_adamw()->set_lr(1e-3);
  s.mutable_spec()->mutable_offload()->set_optimizer_tier(v1::TIER_NVME);
  auto args = TrainArgs(s, Dirs("/w/j", {"/nvme0/j-1-rank0"}));
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_THAT(*args, Contains(std::string("--optimizer_state_dirs=/nvme0/j-1-rank0")));
  EXPECT_THAT(*args, Contains(std::string("--checkpoint_dir=/w/j/checkpoints")));
  EXPECT_THAT(TrainArgs(s, Dirs("/w/j")).status().message(),
              HasSubstr("spec.offload.optimizer_tier"));
}

TEST(TrainArgsTest, ARestartedZoAttemptReplaysTheCoordinatorsStepLog) {
  RankDirs dirs = Dirs("/w/j");
  dirs.replay_log = "/w/j/replay-attempt2.bin";
  auto args = TrainArgs(ZoStart(), dirs);
  ASSERT_TRUE(args.ok());
  EXPECT_THAT(*args, Contains(std::string("--replay_log=/w/j/replay-attempt2.bin")));
}

TEST(ParseStepRecordTest, ExactHexFloats) {
  v1::ZoStepRecord r;
  ASSERT_TRUE(ParseStepRecord(
      "zo-record 12 18446744073709551615 0x1.a36e2eb1c432dp-14 0x1.4p+1 0 -0x1.99999ap-4 0x0p+0",
      &r));
  EXPECT_EQ(r.step(), 12);
  EXPECT_EQ(r.seed(), 18446744073709551615ull);
  EXPECT_EQ(r.lr(), 0x1.a36e2eb1c432dp-14);
  EXPECT_EQ(r.loss(), 2.5);
  EXPECT_FALSE(r.skipped());
  ASSERT_EQ(r.projected_grads_size(), 2);
  EXPECT_EQ(static_cast<float>(r.projected_grads(0)), -0x1.99999ap-4f);
  EXPECT_FALSE(ParseStepRecord("zo-record 1 2 x 0x1p+0 0 0x1p+0", &r));
  EXPECT_FALSE(ParseStepRecord("step 1/2 | loss 3", &r));
}

TEST(ParseTrainLineTest, ProgressEvalAndOtherLines) {
  v1::JobProgress p;
  p.set_eval_loss(-1);
  EXPECT_TRUE(ParseTrainLine("step 20/200 | loss 3.2014 | g +1.2000e-01 | lr 1.00e-04 | 1234 tok/s",
                             256, &p));
  EXPECT_EQ(p.step(), 20);
  EXPECT_DOUBLE_EQ(p.loss(), 3.2014);
  EXPECT_DOUBLE_EQ(p.tokens_per_second(), 1234);
  EXPECT_EQ(p.tokens_total(), 20 * 256);
  EXPECT_TRUE(ParseTrainLine("step 100 | eval loss 2.5000", 256, &p));
  EXPECT_DOUBLE_EQ(p.eval_loss(), 2.5);
  EXPECT_EQ(p.step(), 20);  // An eval line does not move the step.
  EXPECT_TRUE(ParseTrainLine("final eval loss 2.3700 after 200 steps (900 tok/s)", 256, &p));
  EXPECT_DOUBLE_EQ(p.eval_loss(), 2.37);
  EXPECT_EQ(p.step(), 200);  // The last step, though it was not a logged one.
  EXPECT_EQ(p.tokens_total(), 200 * 256);
  EXPECT_TRUE(ParseTrainLine(
      "step 30/200 | loss 3.1 | g +1e-01 | lr 1e-04 | io r 123.4 MB w 61.7 MB | 99 tok/s", 256,
      &p));
  EXPECT_EQ(p.offload_read_bytes(), 123400000);
  EXPECT_EQ(p.offload_write_bytes(), 61700000);
  EXPECT_EQ(p.step(), 30);
  EXPECT_FALSE(ParseTrainLine("model: gpt2, 4 layers", 256, &p));
  EXPECT_FALSE(ParseTrainLine("step log: cut a torn last record (12 bytes)", 256, &p));
  EXPECT_EQ(p.step(), 30);
}

}  // namespace
}  // namespace strata
