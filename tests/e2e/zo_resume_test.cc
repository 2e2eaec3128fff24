// Crash recovery of ZO training through the real binary: strata-train --optimizer=zo is killed
// with SIGKILL part-way (between checkpoints, possibly mid-append), started again with the same
// command, and must finish with weights byte-identical to an uninterrupted run.
#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace strata {
namespace {

using ::strata::testing::ProcessResult;
using ::strata::testing::ReadFileOrEmpty;
using ::strata::testing::RunProcess;
using ::strata::testing::Subprocess;
using ::strata::testing::TestTmpDir;

constexpr char kTrain[] = "services/trainer/strata-train";
constexpr int kHeaderBytes = 24, kRecordBytes = 40;  // Step log with one scalar per step.

std::vector<std::string> Command(const std::string& dir, const std::string& config,
                                 const std::string& variant, bool offload) {
  std::vector<std::string> command = {kTrain,
                                      "--optimizer=zo",
                                      "--zo_variant=" + variant,
                                      "--model_config=" + config,
                                      "--data=/usr/share/common-licenses/GPL-3",
                                      "--batch=2",
                                      "--seq=16",
                                      "--steps=1500",
                                      "--lr=1e-4",
                                      "--min_lr_ratio=0.1",
                                      "--warmup=10",
                                      "--eval_every=0",
                                      "--log_every=500",
                                      "--threads=1",
                                      "--checkpoint_every=400",
                                      "--checkpoint_dir=" + dir + "/ckpt",
                                      "--save_dir=" + dir + "/final"};
  if (offload) command.push_back("--offload_dirs=" + dir + "/nvme");
  return command;
}

int64_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

// The uninterrupted reference runs in memory; the victim runs with or without offloading its
// blocks to NVMe (bitwise the same arithmetic either way).
class ZoResumeTest : public ::testing::TestWithParam<bool> {};

TEST_P(ZoResumeTest, KilledRunResumesToTheSameWeights) {
  const bool offload = GetParam();
  const std::string variant = offload ? "sgd" : "momentum";
  const std::string root = TestTmpDir();
  const std::string config = root + "/config.json";
  std::ofstream(config) << ::strata::testing::kTinyLlamaConfigJson;
  const std::string a = root + (offload ? "/a_off" : "/a"), b = root + (offload ? "/b_off" : "/b");
  mkdir(a.c_str(), 0755);
  mkdir(b.c_str(), 0755);

  absl::StatusOr<ProcessResult> full =
      RunProcess(Command(a, config, variant, false), root, absl::Minutes(5));
  ASSERT_TRUE(full.ok()) << full.status();
  ASSERT_EQ(full->exit_code, 0) << full->err << full->out;

  absl::StatusOr<Subprocess> victim =
      Subprocess::Start(Command(b, config, variant, offload), root, "victim");
  ASSERT_TRUE(victim.ok());
  const std::string log = b + "/ckpt/steplog.bin";
  const absl::Time deadline = absl::Now() + absl::Minutes(3);
  while (FileSize(log) < kHeaderBytes + 600 * kRecordBytes && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  ASSERT_TRUE(victim->Signal(SIGKILL).ok());
  absl::StatusOr<ProcessResult> killed = victim->Wait(absl::Seconds(30));
  ASSERT_TRUE(killed.ok());
  ASSERT_EQ(killed->signal, SIGKILL) << "the run finished before it could be killed";
  const int64_t logged = (FileSize(log) - kHeaderBytes) / kRecordBytes;
  ASSERT_LT(logged, 1500);

  absl::StatusOr<ProcessResult> resumed =
      RunProcess(Command(b, config, variant, offload), root, absl::Minutes(5));
  ASSERT_TRUE(resumed.ok());
  ASSERT_EQ(resumed->exit_code, 0) << resumed->err << resumed->out;
  EXPECT_NE(resumed->out.find("replayed"), std::string::npos) << resumed->out;

  const std::string want = ReadFileOrEmpty(a + "/final/model.safetensors");
  const std::string got = ReadFileOrEmpty(b + "/final/model.safetensors");
  ASSERT_GT(want.size(), 1000u);
  EXPECT_TRUE(want == got) << "weights differ after resuming from step " << logged;
}

INSTANTIATE_TEST_SUITE_P(Modes, ZoResumeTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "offloaded" : "in_memory";
                         });

}  // namespace
}  // namespace strata
