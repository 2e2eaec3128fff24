// Task fine-tuning through the service, end to end with real processes: a small GPT-2-shaped
// model is pretrained first-order on a synthetic language (deploy/examples/synthetic_sentiment.py,
// with its word-level tokenizer), exported through the coordinator, then fine-tuned
// zeroth-order — full weights and LoRA, at the same time on two workers — on a sentiment task
// given in the task file format (sentiment.yaml). The jobs evaluate on the task's dev examples
// and report accuracy through the typed progress; `job describe` shows it (latest and best).
// `strata-train eval` gives the zero-shot and 4-shot baselines of the pretrained model and the
// held-out accuracy of each fine-tuned export, on the same test examples.
//
// Stated margins (measured: zero-shot 0.40, 4-shot 0.53, both fine-tunes 1.00): held-out
// accuracy starts below 0.65 and ends at least 0.9, and at least 0.3 above zero-shot, within
// 200 ZO steps.
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/subprocess.h"

namespace strata {
namespace {

using ::strata::testing::Absolute;
using ::strata::testing::ProcessResult;
using ::strata::testing::RunProcess;
using ::strata::testing::Subprocess;
using ::strata::testing::TestTmpDir;
using ::strata::testing::WaitForPortFile;
using ::testing::HasSubstr;

constexpr char kCoordinator[] = "services/coordinator/strata-coordinator";
constexpr char kWorker[] = "services/worker/strata-worker";
constexpr char kCli[] = "services/cli/strata";
constexpr char kTrain[] = "services/trainer/strata-train";
constexpr char kGenerator[] = "deploy/examples/synthetic_sentiment.py";

class TaskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = Absolute(absl::StrCat(TestTmpDir(), "/task"));
    ASSERT_EQ(mkdir(dir_.c_str(), 0755), 0) << dir_;
    data_ = dir_ + "/data";
    absl::StatusOr<ProcessResult> made = RunProcess({"/usr/bin/python3", kGenerator, data_}, ".");
    ASSERT_TRUE(made.ok() && made->exit_code == 0) << (made.ok() ? made->err : "");
    std::ofstream(dir_ + "/tokens") << "alice-token alice\n";
    std::ofstream(dir_ + "/worker-tokens") << "alpha-token alpha\nbeta-token beta\n";
    std::ofstream(dir_ + "/alice.token") << "alice-token\n";
    absl::StatusOr<ProcessResult> certs =
        RunProcess({"/bin/bash", "deploy/dev-certs.sh", dir_ + "/certs"}, ".");
    ASSERT_TRUE(certs.ok() && certs->exit_code == 0) << (certs.ok() ? certs->err : "");
    const std::vector<std::string> tls = {"--tls_cert=" + dir_ + "/certs/server.pem",
                                          "--tls_key=" + dir_ + "/certs/server-key.pem"};
    absl::StatusOr<Subprocess> coordinator = Subprocess::Start(
        {kCoordinator, "--listen=localhost:0", "--port_file=" + dir_ + "/coordinator.port",
         "--data_dir=" + dir_ + "/coordinator", "--tokens_file=" + dir_ + "/tokens",
         "--worker_tokens_file=" + dir_ + "/worker-tokens", tls[0], tls[1],
         "--data_roots=" + data_, "--metrics_listen=localhost:0",
         "--metrics_port_file=" + dir_ + "/metrics.port"},
        dir_, "coordinator");
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    coordinator_ = std::make_unique<Subprocess>(*std::move(coordinator));
    const int port = WaitForPortFile(dir_ + "/coordinator.port", *coordinator_);
    ASSERT_GT(port, 0);
    address_ = absl::StrCat("localhost:", port);
    // The workers share one work directory, as a shared file system would: the fine-tunes
    // name the pretraining's export by its path in the user's area.
    for (const std::string name : {"alpha", "beta"}) {
      std::ofstream(dir_ + "/" + name + ".token") << name << "-token\n";
      absl::StatusOr<Subprocess> worker = Subprocess::Start(
          {kWorker, "--coordinator=" + address_, "--name=" + name, "--listen=localhost:0",
           "--cores=1", "--work_dir=" + dir_ + "/work", "--data_roots=" + data_,
           "--train_binary=" + Absolute(kTrain), tls[0], tls[1],
           "--tls_ca=" + dir_ + "/certs/ca.pem", "--worker_token_file=" + dir_ + "/" + name +
           ".token", "--port_file=" + dir_ + "/" + name + ".port"},
          dir_, name);
      ASSERT_TRUE(worker.ok()) << worker.status();
      workers_.push_back(std::make_unique<Subprocess>(*std::move(worker)));
    }
  }

  ProcessResult Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {kCli, "--coordinator=" + address_,
                               "--token_file=" + dir_ + "/alice.token",
                               "--tls_ca=" + dir_ + "/certs/ca.pem"});
    absl::StatusOr<ProcessResult> result = RunProcess(args, dir_, absl::Minutes(5));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : ProcessResult();
  }

  std::string Submit(const std::string& name, const std::string& yaml, bool detach) {
    const std::string path = absl::StrCat(dir_, "/", name, ".yaml");
    std::ofstream(path) << yaml;
    std::vector<std::string> args = {"job", "submit", path};
    if (detach) args.push_back("--detach");
    ProcessResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
    const size_t at = r.out.find("submitted job ");
    if (at == std::string::npos) return "";
    return r.out.substr(at + 14, r.out.find(' ', at + 14) - at - 14);
  }

  // `strata-train eval` of `model` (plus `adapter`) on the task: its JSON line.
  nlohmann::json Eval(const std::string& model, const std::string& adapter, int shots) {
    std::vector<std::string> args = {kTrain,
                                     "eval",
                                     "--init_from=" + model,
                                     "--tokenizer=" + data_ + "/tokenizer.json",
                                     "--task=" + data_ + "/sentiment.yaml",
                                     absl::StrCat("--shots=", shots),
                                     "--threads=1"};
    if (!adapter.empty()) args.push_back("--adapter=" + adapter);
    absl::StatusOr<ProcessResult> r = RunProcess(args, ".", absl::Minutes(2));
    EXPECT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err : r.status().ToString());
    if (!r.ok()) return nlohmann::json();
    std::printf("%s", r->err.c_str());
    return nlohmann::json::parse(r->out, nullptr, false);
  }

  std::string dir_, data_, address_;
  std::unique_ptr<Subprocess> coordinator_;
  std::vector<std::unique_ptr<Subprocess>> workers_;
};

std::string FineTuneYaml(const std::string& name, const std::string& task_file, bool lora) {
  std::ifstream in(task_file);
  std::string task((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The task file's keys, indented under `task:` (its comment line dropped).
  std::string indented;
  for (size_t begin = 0; begin < task.size();) {
    size_t end = task.find('\n', begin);
    if (end == std::string::npos) end = task.size();
    const std::string line = task.substr(begin, end - begin);
    if (!line.empty() && line[0] != '#') indented += "  " + line + "\n";
    begin = end + 1;
  }
  return absl::StrCat("name: ", name, R"(
model: {checkpoint_path: pretrain/export}
data: {tokenizer_path: )",
                      task_file.substr(0, task_file.rfind('/')), R"(/tokenizer.json, batch_size: 16, seq_len: 24}
optimizer:
  zeroth_order: )",
                      lora ? "{lr: 1e-3, epsilon: 1e-2}" : "{lr: 1e-4, epsilon: 1e-3}", R"(
training: {max_steps: 200, log_interval: 50, eval_interval: 50, threads: 1, seed: 2}
resources: {cores_per_rank: 1}
checkpoint: {path: )",
                      name, R"(, export_safetensors: true}
)",
                      lora ? "peft: {lora: {r: 8}}\n" : "", "task:\n", indented);
}

TEST_F(TaskTest, ZoFineTuneOnATaskRaisesHeldOutAccuracyFromNearChance) {
  // Pretraining, first-order, on the synthetic language.
  const std::string pretrain = Submit("pretrain", absl::StrCat(R"(name: pretrain
model:
  config_json: '{"model_type": "gpt2", "vocab_size": 538, "n_embd": 128, "n_layer": 2, "n_head": 4, "n_positions": 64}'
data: {train_paths: [)", data_, R"(/corpus.txt], tokenizer_path: )", data_,
                                                              R"(/tokenizer.json, batch_size: 16, seq_len: 32}
optimizer:
  adamw: {lr: 3e-3, weight_decay: 0.1}
  schedule: {kind: LR_SCHEDULE_KIND_COSINE, warmup_steps: 20, min_lr_ratio: 0.1}
training: {max_steps: 300, log_interval: 100, threads: 1, seed: 1}
resources: {cores_per_rank: 1}
checkpoint: {path: pretrain, export_safetensors: true}
)"),
                                      /*detach=*/false);
  ASSERT_FALSE(pretrain.empty());
  const std::string pretrained = dir_ + "/pretrained";
  ProcessResult exported = Cli({"job", "export", pretrain, pretrained});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;

  // Baselines of the pretrained model on the held-out examples.
  const nlohmann::json base = Eval(pretrained, "", 4);
  ASSERT_TRUE(base.is_object()) << base;
  const double zero_shot = base["zero_shot"]["accuracy"].get<double>();
  const double four_shot = base["k_shot"]["accuracy"].get<double>();
  EXPECT_LT(zero_shot, 0.65) << "the pretrained model should not know the new prompt yet";
  EXPECT_EQ(base["examples"].get<int>(), 256);

  // Full and LoRA ZO fine-tunes, at once on the two workers.
  const std::string full =
      Submit("zo-full", FineTuneYaml("zo-full", data_ + "/sentiment.yaml", false), true);
  const std::string lora =
      Submit("zo-lora", FineTuneYaml("zo-lora", data_ + "/sentiment.yaml", true), true);
  for (const std::string& id : {full, lora}) {
    ProcessResult waited = Cli({"job", "wait", id});
    EXPECT_EQ(waited.exit_code, 0) << waited.err << waited.out;
    EXPECT_THAT(waited.out, HasSubstr("COMPLETED after 200 steps"));
    EXPECT_THAT(waited.out, HasSubstr("accuracy"));
    // The job's own dev evaluations, as the coordinator keeps them.
    const nlohmann::json job =
        nlohmann::json::parse(Cli({"job", "describe", id, "--output=json"}).out, nullptr, false);
    ASSERT_TRUE(job.is_object());
    bool found = false;
    for (const nlohmann::json& metric : job["eval_metrics"]) {
      if (metric["name"] != "accuracy") continue;
      found = true;
      EXPECT_GE(metric["best"].get<double>(), 0.9) << metric;
      EXPECT_EQ(metric["latest_step"].get<std::string>(), "200") << metric;
    }
    EXPECT_TRUE(found) << job.dump();
    EXPECT_THAT(Cli({"job", "describe", id}).out, HasSubstr("eval accuracy:"));
  }
  // Held-out accuracy of the exports, on the same examples as the baselines.
  ASSERT_EQ(Cli({"job", "export", full, dir_ + "/full"}).exit_code, 0);
  ASSERT_EQ(Cli({"job", "export", lora, dir_ + "/lora"}).exit_code, 0);
  const double full_accuracy = Eval(dir_ + "/full", "", 0)["zero_shot"]["accuracy"].get<double>();
  const double lora_accuracy =
      Eval(pretrained, dir_ + "/lora", 0)["zero_shot"]["accuracy"].get<double>();
  std::printf("held-out accuracy: zero-shot %.4f, 4-shot %.4f, ZO full %.4f, ZO LoRA %.4f\n",
              zero_shot, four_shot, full_accuracy, lora_accuracy);
  for (const double accuracy : {full_accuracy, lora_accuracy}) {
    EXPECT_GE(accuracy, 0.9);
    EXPECT_GE(accuracy, zero_shot + 0.3);
  }
}

}  // namespace
}  // namespace strata
