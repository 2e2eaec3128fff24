// Adapters through the real strata-train binary: a base model trained first-order, then
// fine-tuned with ZO-LoRA and with a first-order prefix (each exporting a PEFT directory of its
// kind), then the LoRA adapter merged into the base (--merge_adapter): a plain Hugging Face
// checkpoint that differs from the base only where the adapters act. Bad flag combinations are
// refused naming the flags.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace strata {
namespace {

using ::strata::testing::ProcessResult;
using ::strata::testing::ReadFileOrEmpty;
using ::strata::testing::RunProcess;
using ::strata::testing::TestTmpDir;
using ::testing::HasSubstr;

constexpr char kTrain[] = "services/trainer/strata-train";

ProcessResult Train(const std::vector<std::string>& flags) {
  std::vector<std::string> command = {kTrain,
                                      "--data=/usr/share/common-licenses/GPL-3",
                                      "--batch=2",
                                      "--seq=16",
                                      "--log_every=1000",
                                      "--eval_every=0",
                                      "--threads=1"};
  command.insert(command.end(), flags.begin(), flags.end());
  absl::StatusOr<ProcessResult> result = RunProcess(command, TestTmpDir(), absl::Minutes(3));
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : ProcessResult{};
}

TEST(PeftCliTest, LoraAndPrefixRunsExportPeftDirectoriesAndLoraMergesIntoTheBase) {
  const std::string dir = TestTmpDir();
  const ProcessResult base = Train({"--steps=10", "--save_dir=" + dir + "/base"});
  ASSERT_EQ(base.exit_code, 0) << base.err;

  const ProcessResult lora = Train({"--init_from=" + dir + "/base", "--optimizer=zo", "--lr=1e-3",
                                    "--eps=1e-2", "--lora_r=4", "--lora_targets=all-linear",
                                    "--steps=20", "--save_dir=" + dir + "/lora"});
  ASSERT_EQ(lora.exit_code, 0) << lora.err;
  EXPECT_THAT(lora.out + lora.err, HasSubstr("LoRA r=4 alpha=16"));
  EXPECT_THAT(ReadFileOrEmpty(dir + "/lora/adapter_config.json"),
              HasSubstr("\"peft_type\": \"LORA\""));

  const ProcessResult prefix =
      Train({"--init_from=" + dir + "/base", "--optimizer=adamw", "--lr=1e-2", "--prefix_tokens=3",
             "--prefix_init_from_activations", "--steps=5", "--save_dir=" + dir + "/prefix"});
  ASSERT_EQ(prefix.exit_code, 0) << prefix.err;
  EXPECT_THAT(ReadFileOrEmpty(dir + "/prefix/adapter_config.json"),
              HasSubstr("\"peft_type\": \"PREFIX_TUNING\""));

  const ProcessResult merged =
      Train({"--merge_adapter=" + dir + "/lora", "--init_from=" + dir + "/base",
             "--save_dir=" + dir + "/merged"});
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  const std::string before = ReadFileOrEmpty(dir + "/base/model.safetensors");
  const std::string after = ReadFileOrEmpty(dir + "/merged/model.safetensors");
  ASSERT_FALSE(after.empty());
  EXPECT_EQ(after.size(), before.size());
  EXPECT_NE(after, before) << "the merge changed nothing";
  EXPECT_EQ(ReadFileOrEmpty(dir + "/merged/config.json"),
            ReadFileOrEmpty(dir + "/base/config.json"));

  const ProcessResult incomplete = Train({"--merge_adapter=" + dir + "/lora"});
  EXPECT_EQ(incomplete.exit_code, 1);
  EXPECT_THAT(incomplete.err, HasSubstr("--merge_adapter needs --init_from and --save_dir"));
  const ProcessResult orphan = Train({"--prefix_init_from_activations", "--steps=1"});
  EXPECT_EQ(orphan.exit_code, 1);
  EXPECT_THAT(orphan.err, HasSubstr("--prefix_init_from_activations needs --prefix_tokens"));
  const ProcessResult both =
      Train({"--lora_r=4", "--prefix_tokens=2", "--steps=1", "--save_dir=" + dir + "/both"});
  EXPECT_EQ(both.exit_code, 1);
  EXPECT_THAT(both.err, HasSubstr("spec.peft: set one of lora and prefix"));
}

}  // namespace
}  // namespace strata
