// The service end to end with real processes on loopback: strata-coordinator (SQLite state,
// user tokens), two strata-worker daemons running ranks as strata-train children, and the
// strata CLI. A ZO job and an FO job complete; a ZO job whose worker is killed with SIGKILL
// restarts on the other worker from its checkpoint and ends with weights byte-identical to an
// uninterrupted run; a coordinator killed with SIGKILL mid-job is restarted on the same data
// directory and the job finishes; bad configs, bad tokens and other users' jobs get clear
// errors and change nothing; a job runs exactly the lr, schedule and checkpoint policy it was
// submitted with, as its typed progress and checkpoint reports show.
#include <dirent.h>
#include <httplib.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace strata {
namespace {

using ::strata::testing::Absolute;
using ::strata::testing::ProcessResult;
using ::strata::testing::ReadFileOrEmpty;
using ::strata::testing::RunProcess;
using ::strata::testing::Subprocess;
using ::strata::testing::TestTmpDir;
using ::strata::testing::WaitForPortFile;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kCoordinator[] = "services/coordinator/strata-coordinator";
constexpr char kWorker[] = "services/worker/strata-worker";
constexpr char kCli[] = "services/cli/strata";
constexpr char kTrain[] = "services/trainer/strata-train";

// A ZO (or FO) job on a tiny LLaMA over the GPL text, checkpointing into `ckpt`.
std::string JobYaml(const std::string& name, const std::string& ckpt, int64_t steps, bool zo,
                    int batch) {
  return absl::StrCat(R"(name: )", name, R"(
model:
  config_json: ')",
                      ::strata::testing::kTinyLlamaConfigJson, R"('
data:
  train_paths: [/usr/share/common-licenses/GPL-3]
  batch_size: )",
                      batch, R"(
  seq_len: 16
  eval_batches: 2
optimizer:
)",
                      zo ? "  zeroth_order: {lr: 1e-4, epsilon: 1e-3}\n"
                         : "  adamw: {lr: 3e-3, weight_decay: 0.1}\n",
                      R"(training: {max_steps: )", steps,
                      R"(, log_interval: 50, threads: 1, seed: 3}
resources: {cores_per_rank: 1}
checkpoint: {)",
                      ckpt.empty() ? "" : "path: " + ckpt + ", ",
                      R"(interval_steps: 200, export_safetensors: true}
)");
}

class JobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(TestTmpDir(), "/",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_EQ(mkdir(dir_.c_str(), 0755), 0) << dir_;
    std::ofstream(dir_ + "/tokens") << "# token user\nalice-token alice\nbob-token bob\n";
    std::ofstream(dir_ + "/worker-tokens") << "alpha-token alpha\nbeta-token beta\n";
    // Every connection uses TLS with a development CA (deploy/dev-certs.sh).
    absl::StatusOr<ProcessResult> certs =
        RunProcess({"/bin/bash", "deploy/dev-certs.sh", dir_ + "/certs"}, dir_);
    ASSERT_TRUE(certs.ok() && certs->exit_code == 0) << (certs.ok() ? certs->err : "");
    ca_ = Absolute(dir_ + "/certs/ca.pem");
    tls_server_ = {"--tls_cert=" + dir_ + "/certs/server.pem",
                   "--tls_key=" + dir_ + "/certs/server-key.pem"};
    StartCoordinator("localhost:0");
  }

  void StartCoordinator(const std::string& listen) {
    const std::string port_file = dir_ + "/coordinator.port";
    unlink(port_file.c_str());
    absl::StatusOr<Subprocess> coordinator = Subprocess::Start(
        {kCoordinator, "--listen=" + listen, "--port_file=" + port_file,
         "--data_dir=" + dir_ + "/coordinator", "--tokens_file=" + dir_ + "/tokens",
         "--worker_tokens_file=" + dir_ + "/worker-tokens", tls_server_[0], tls_server_[1],
         "--data_roots=/usr/share/common-licenses", "--heartbeat_interval=200ms",
         "--heartbeat_timeout=2s", "--adopt_timeout=10s", "--metrics_listen=localhost:0",
         "--metrics_port_file=" + dir_ + "/metrics.port"},
        dir_, absl::StrCat("coordinator", ++coordinators_));
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    coordinator_ = std::make_unique<Subprocess>(*std::move(coordinator));
    port_ = WaitForPortFile(port_file, *coordinator_);
    ASSERT_GT(port_, 0);
    address_ = absl::StrCat("localhost:", port_);
  }

  // `token` defaults to the worker's own ("<name>-token").
  void StartWorker(const std::string& name, std::string token = "") {
    if (token.empty()) token = name + "-token";
    const std::string nvme = dir_ + "/nvme-" + name;
    mkdir(nvme.c_str(), 0755);
    absl::StatusOr<Subprocess> worker = Subprocess::Start(
        {kWorker, "--coordinator=" + address_, "--name=" + name, "--listen=localhost:0",
         "--cores=1", "--work_dir=" + dir_ + "/work-" + name,
         "--data_roots=/usr/share/common-licenses", "--train_binary=" + Absolute(kTrain),
         "--advertise_address=127.0.0.1:7071", tls_server_[0], tls_server_[1], "--tls_ca=" + ca_,
         "--worker_token_file=" + TokenFile(token), "--metrics_listen=localhost:0",
         "--metrics_port_file=" + dir_ + "/" + name + ".metrics", "--nvme_paths=" + nvme},
        dir_, name);
    ASSERT_TRUE(worker.ok()) << worker.status();
    workers_[name] = std::make_unique<Subprocess>(*std::move(worker));
  }

  // A 40-step job on the tiny LLaMA over the GPL text; `extra` adds top-level sections.
  std::string FortyStepJob(const std::string& name, int log_interval, const std::string& extra) {
    const std::string path = absl::StrCat(dir_, "/", name, ".yaml");
    std::ofstream(path) << absl::StrCat(
        "name: ", name, "\nmodel:\n  config_json: '", ::strata::testing::kTinyLlamaConfigJson,
        "'\ndata: {train_paths: [/usr/share/common-licenses/GPL-3], batch_size: 2, seq_len: 16, "
        "eval_batches: 1}\ntraining: {max_steps: 40, log_interval: ",
        log_interval, ", threads: 1, seed: 3}\n", extra);
    return path;
  }

  // A file holding `token`: tokens never travel on a command line.
  std::string TokenFile(const std::string& token) {
    const std::string path = absl::StrCat(dir_, "/", token, ".token");
    std::ofstream(path) << token << "\n";
    return path;
  }

  // Alice's area on `worker` (checkpoint.path and job directories resolve there).
  std::string Area(const std::string& worker, const std::string& user = "alice") {
    return absl::StrCat(Absolute(dir_), "/work-", worker, "/users/", user);
  }

  // The file at `relative` in Alice's area on whichever worker has it.
  std::string ReadFromAnyArea(const std::string& relative) {
    for (const char* worker : {"alpha", "beta"}) {
      std::string bytes = ReadFileOrEmpty(Area(worker) + "/" + relative);
      if (!bytes.empty()) return bytes;
    }
    return "";
  }

  ProcessResult Cli(std::vector<std::string> args, const std::string& token = "alice-token") {
    args.insert(args.begin(), {kCli, "--coordinator=" + address_,
                               "--token_file=" + TokenFile(token), "--tls_ca=" + ca_});
    absl::StatusOr<ProcessResult> result = RunProcess(args, dir_, absl::Minutes(5));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : ProcessResult();
  }

  std::string WriteJob(const std::string& name, const std::string& ckpt, int64_t steps,
                       bool zo = true, int batch = 2) {
    const std::string path = absl::StrCat(dir_, "/", name, ".yaml");
    std::ofstream(path) << JobYaml(name, ckpt, steps, zo, batch);
    return path;
  }

  // The job id printed by `job submit --detach`.
  std::string SubmitDetached(const std::string& config, const std::string& token = "alice-token") {
    ProcessResult r = Cli({"job", "submit", config, "--detach"}, token);
    EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
    const size_t at = r.out.find("submitted job ");
    if (at == std::string::npos) return "";
    const size_t begin = at + 14;
    return r.out.substr(begin, r.out.find(' ', begin) - begin);
  }

  // `job describe --output=json` until `predicate(json)` holds.
  template <typename Predicate>
  std::string DescribeUntil(const std::string& id, Predicate predicate) {
    const absl::Time deadline = absl::Now() + absl::Minutes(2);
    std::string json;
    while (absl::Now() < deadline) {
      json = Cli({"job", "describe", id, "--output=json"}).out;
      if (predicate(json)) return json;
      absl::SleepFor(absl::Milliseconds(50));
    }
    ADD_FAILURE() << "job " << id << " never matched; last:\n" << json;
    return json;
  }

  static int64_t Step(const std::string& json) {
    const size_t at = json.find("\"step\": \"");
    int64_t step = 0;
    if (at == std::string::npos) return 0;
    absl::SimpleAtoi(json.substr(at + 9, json.find('"', at + 9) - at - 9), &step);
    return step;
  }

  std::string dir_, address_, ca_;
  std::vector<std::string> tls_server_;
  int port_ = 0, coordinators_ = 0;
  std::unique_ptr<Subprocess> coordinator_;
  std::map<std::string, std::unique_ptr<Subprocess>> workers_;
};

TEST_F(JobTest, ZoAndFoJobsCompleteWithDecreasingLoss) {
  StartWorker("alpha");
  StartWorker("beta");
  ProcessResult zo = Cli({"job", "submit", WriteJob("zo", "zo-ckpt", 400)});
  EXPECT_EQ(zo.exit_code, 0) << zo.err << zo.out;
  EXPECT_THAT(zo.out, HasSubstr("COMPLETED after 400 steps"));
  ProcessResult fo = Cli({"job", "submit", WriteJob("fo", "fo-ckpt", 300, false)});
  EXPECT_EQ(fo.exit_code, 0) << fo.err << fo.out;
  EXPECT_THAT(fo.out, HasSubstr("COMPLETED after 300 steps"));
  EXPECT_THAT(Cli({"job", "list"}).out, HasSubstr("COMPLETED"));
  // Both trainings lower the loss; compare the ranks' first and last progress lines.
  for (const auto& [result, drop] : {std::pair{&zo, 0.0}, std::pair{&fo, 1.0}}) {
    const size_t at = result->out.find("submitted job ") + 14;
    const std::string id = result->out.substr(at, result->out.find(' ', at) - at);
    const std::string logs = Cli({"job", "logs", id, "--rank=0"}).out;
    const size_t first = logs.find("| loss "), last = logs.rfind("| loss ");
    ASSERT_NE(first, std::string::npos) << logs;
    double first_loss = 0, last_loss = 0;
    ASSERT_TRUE(absl::SimpleAtod(logs.substr(first + 7, 6), &first_loss)) << logs;
    ASSERT_TRUE(absl::SimpleAtod(logs.substr(last + 7, 6), &last_loss)) << logs;
    EXPECT_LT(last_loss, first_loss - drop) << logs;
  }
  EXPECT_TRUE(!ReadFromAnyArea("zo-ckpt/export/model.safetensors").empty());
}

// ZeRO stage 3 with each rank's weight shard and AdamW state on its worker's NVMe; the ranks meet
// through the coordinator's rendezvous store, with or without shared storage.
TEST_F(JobTest, ATwoRankFoJobRunsAcrossBothWorkers) {
  StartWorker("alpha");
  StartWorker("beta");
  const std::string config = WriteJob("dp", "dp", 200, /*zo=*/false);
  ProcessResult r = Cli(
      {"job", "submit", config,
       "--config=resources.ranks=2,zero.stage=3,zero.compute_dtype=DTYPE_BF16,data.batch_size=1,"
       "offload.param_tier=TIER_NVME,offload.optimizer_tier=TIER_NVME"});
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_THAT(r.out, HasSubstr("COMPLETED after 200 steps"));
  const size_t at = r.out.find("submitted job ") + 14;
  const std::string id = r.out.substr(at, r.out.find(' ', at) - at);
  const std::string json = Cli({"job", "describe", id, "--output=json"}).out;
  EXPECT_THAT(json, HasSubstr("\"worker_id\": \"alpha\""));
  EXPECT_THAT(json, HasSubstr("\"worker_id\": \"beta\""));
  const std::string rank1 = Cli({"job", "logs", id, "--rank=1"}).out;
  EXPECT_THAT(rank1, HasSubstr("data parallel: rank 1 of 2, ZeRO stage 3, met through the "
                               "coordinator"));
  EXPECT_THAT(rank1, HasSubstr("MB on NVMe"));
  EXPECT_THAT(rank1, HasSubstr("on a bf16 copy"));
  EXPECT_THAT(rank1, Not(HasSubstr("and 0.0 MB on NVMe")));
  EXPECT_FALSE(ReadFromAnyArea("dp/export/model.safetensors").empty());
  // No shared storage at all: the ranks meet through the coordinator's store.
  ProcessResult local = Cli({"job", "submit", WriteJob("dp2", "", 20, false),
                             "--config=resources.ranks=2,data.batch_size=1"});
  EXPECT_EQ(local.exit_code, 0) << local.err << local.out;
  EXPECT_THAT(local.out, HasSubstr("COMPLETED after 20 steps"));
}

// The victim's checkpoints stay on its worker's local disk (no shared storage): the restarted
// attempt rebuilds the run from the coordinator's copy of the step log.
TEST_F(JobTest, KilledWorkerRestartsTheZoJobToTheSameWeights) {
  StartWorker("alpha");
  StartWorker("beta");
  // Reference: uninterrupted. Batch 32: slow enough (seconds) to be killed part-way.
  ProcessResult full = Cli({"job", "submit", WriteJob("full", "full", 3000, true, 32)});
  ASSERT_EQ(full.exit_code, 0) << full.err << full.out;
  const std::string id = SubmitDetached(WriteJob("victim", "", 3000, true, 32));
  ASSERT_FALSE(id.empty());
  const std::string json = DescribeUntil(id, [](const std::string& j) { return Step(j) >= 600; });
  ASSERT_LT(Step(json), 3000) << "finished before it could be killed";
  const std::string worker =
      json.find("\"worker_id\": \"alpha\"") != std::string::npos ? "alpha" : "beta";
  const std::string other = worker == "alpha" ? "beta" : "alpha";
  ASSERT_TRUE(workers_[worker]->Signal(SIGKILL).ok());
  ProcessResult waited = Cli({"job", "wait", id});
  EXPECT_EQ(waited.exit_code, 0) << waited.err << waited.out;
  const std::string after = Cli({"job", "describe", id, "--output=json"}).out;
  EXPECT_THAT(after, HasSubstr("\"restarts\": 1"));
  EXPECT_THAT(after, HasSubstr("\"worker_id\": \"" + other + "\""));
  EXPECT_THAT(after, HasSubstr("\"step\": \"3000\""));
  const std::string want = ReadFromAnyArea("full/export/model.safetensors");
  const std::string got = ReadFileOrEmpty(
      absl::StrCat(Area(other), "/jobs/", id, "/checkpoints/export/model.safetensors"));
  ASSERT_GT(want.size(), 1000u);
  EXPECT_TRUE(want == got) << "weights differ after the restart";
  ProcessResult logs = Cli({"job", "logs", id});
  EXPECT_THAT(logs.out, HasSubstr("lost"));
  // At least the steps up to the kill came back from the coordinator's step log.
  const size_t at = logs.out.find("[rank 0] replayed ");
  ASSERT_NE(at, std::string::npos) << logs.out;
  int64_t replayed = 0;
  ASSERT_TRUE(
      absl::SimpleAtoi(logs.out.substr(at + 18, logs.out.find(' ', at + 18) - at - 18), &replayed));
  EXPECT_GE(replayed, 600);
}

TEST_F(JobTest, KilledCoordinatorIsRestartedAndTheJobFinishes) {
  StartWorker("alpha");
  const std::string id = SubmitDetached(WriteJob("survivor", "survivor", 3000, true, 32));
  ASSERT_FALSE(id.empty());
  DescribeUntil(id, [](const std::string& j) { return Step(j) >= 200; });
  // Operators see the job on both daemons' /metrics while it runs.
  const int coordinator_metrics = WaitForPortFile(dir_ + "/metrics.port", *coordinator_);
  httplib::Client coordinator_http("localhost", coordinator_metrics);
  auto scraped = coordinator_http.Get("/metrics");
  ASSERT_TRUE(scraped);
  EXPECT_THAT(scraped->body, HasSubstr("strata_jobs_running 1"));
  EXPECT_THAT(scraped->body, HasSubstr(absl::StrCat("strata_train_step{job_id=\"", id)));
  EXPECT_THAT(scraped->body, HasSubstr("strata_workers{state=\"ready\"} 1"));
  httplib::Client worker_http("localhost",
                              WaitForPortFile(dir_ + "/alpha.metrics", *workers_["alpha"]));
  auto worker_scrape = worker_http.Get("/metrics");
  ASSERT_TRUE(worker_scrape);
  EXPECT_THAT(worker_scrape->body, HasSubstr("strata_worker_ranks_running 1"));
  EXPECT_THAT(worker_scrape->body,
              HasSubstr(absl::StrCat("strata_train_step_duration_seconds_count{job_id=\"", id)));
  EXPECT_EQ(worker_http.Get("/readyz")->status, 200);
  ASSERT_TRUE(coordinator_->Signal(SIGKILL).ok());
  coordinator_->Wait(absl::Seconds(10)).IgnoreError();
  StartCoordinator(absl::StrCat("localhost:", port_));  // Same port, same data directory.
  ProcessResult waited = Cli({"job", "wait", id});
  EXPECT_EQ(waited.exit_code, 0) << waited.err << waited.out;
  const std::string after = Cli({"job", "describe", id, "--output=json"}).out;
  EXPECT_THAT(after, HasSubstr("\"state\": \"JOB_STATE_COMPLETED\""));
  EXPECT_THAT(after, HasSubstr("\"attempt\": 1"));  // Re-adopted, not restarted.
}

TEST_F(JobTest, CancelCheckpointsTheZoRankBeforeItStops) {
  StartWorker("alpha");
  const std::string id = SubmitDetached(WriteJob("canceled", "canceled", 3000, true, 32));
  ASSERT_FALSE(id.empty());
  DescribeUntil(id, [](const std::string& j) { return Step(j) >= 100; });
  ProcessResult cancel = Cli({"job", "cancel", id, "--reason=enough"});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_THAT(cancel.out, HasSubstr("STOPPING_CANCELED"));
  EXPECT_EQ(Cli({"job", "wait", id}).exit_code, 1);  // Ended, not completed.
  EXPECT_THAT(Cli({"job", "describe", id}).out, HasSubstr("CANCELED"));
  const std::string logs = Cli({"job", "logs", id}).out;
  EXPECT_THAT(logs, HasSubstr("on request; checkpointed"));
  EXPECT_THAT(logs, HasSubstr("STOPPING_CANCELED -> CANCELED: enough"));
}

TEST_F(JobTest, BadInputAndOtherUsersAreRefusedClearly) {
  // No workers: jobs stay queued.
  const std::string config = WriteJob("queued", "q", 100);
  std::ofstream(dir_ + "/typo.yaml") << "name: t\ntraining: {max_stepz: 3}\n";
  ProcessResult typo = Cli({"job", "submit", dir_ + "/typo.yaml"});
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_THAT(typo.err, HasSubstr("max_stepz"));
  ProcessResult invalid = Cli({"job", "submit", config, "--config=data.batch_size=0"});
  EXPECT_EQ(invalid.exit_code, 1);
  EXPECT_THAT(invalid.err, HasSubstr("spec.data.batch_size"));
  // Plaintext to a TLS coordinator, or TLS without trusting its CA: refused.
  absl::StatusOr<ProcessResult> plaintext =
      RunProcess({kCli, "--coordinator=" + address_, "--insecure", "job", "list"}, dir_);
  ASSERT_TRUE(plaintext.ok());
  EXPECT_EQ(plaintext->exit_code, 1);
  EXPECT_THAT(plaintext->err, HasSubstr("UNAVAILABLE"));
  // A token is never sent over plaintext unless the user says so.
  absl::StatusOr<ProcessResult> token_in_clear =
      RunProcess({kCli, "--coordinator=" + address_, "--insecure", "job", "list"}, dir_,
                 absl::Seconds(60), {"STRATA_TOKEN=alice-token"});
  ASSERT_TRUE(token_in_clear.ok());
  EXPECT_EQ(token_in_clear->exit_code, 2);
  EXPECT_THAT(token_in_clear->err, HasSubstr("refusing to send a bearer token over plaintext"));
  absl::StatusOr<ProcessResult> untrusted =
      RunProcess({kCli, "--coordinator=" + address_, "job", "list"}, dir_, absl::Seconds(60),
                 {"STRATA_TOKEN=alice-token"});
  ASSERT_TRUE(untrusted.ok());
  EXPECT_EQ(untrusted->exit_code, 1);
  ProcessResult bad_token = Cli({"job", "list"}, "nope");
  EXPECT_EQ(bad_token.exit_code, 1);
  EXPECT_THAT(bad_token.err, HasSubstr("UNAUTHENTICATED"));

  // A worker presenting another worker's token cannot register (and so runs nothing).
  StartWorker("mallory", "beta-token");
  absl::SleepFor(absl::Seconds(1));
  ProcessResult nodes = Cli({"node", "list"});
  EXPECT_EQ(nodes.exit_code, 0) << nodes.err;
  EXPECT_THAT(nodes.out, HasSubstr("HEARTBEAT"));  // The table, without mallory.
  EXPECT_THAT(nodes.out, ::testing::Not(HasSubstr("mallory")));
  EXPECT_THAT(workers_["mallory"]->Stderr(), HasSubstr("PERMISSION_DENIED"));

  const std::string id = SubmitDetached(config);
  ASSERT_FALSE(id.empty());
  ProcessResult theirs = Cli({"job", "describe", id}, "bob-token");
  EXPECT_EQ(theirs.exit_code, 1);
  EXPECT_THAT(theirs.err, HasSubstr("NOT_FOUND"));
  EXPECT_EQ(Cli({"job", "kill", id}, "bob-token").exit_code, 1);
  EXPECT_THAT(Cli({"job", "list"}, "bob-token").out, ::testing::Not(HasSubstr(id)));
  ProcessResult mine = Cli({"job", "describe", id});
  EXPECT_THAT(mine.out, HasSubstr("QUEUED (0 ahead)"));
  ProcessResult killed = Cli({"job", "kill", id});
  EXPECT_EQ(killed.exit_code, 0) << killed.err;
  EXPECT_THAT(killed.out, HasSubstr("CANCELED"));
  EXPECT_EQ(Cli({"job", "wait", id}).exit_code, 1);  // Ended, but not completed.
}

// The job contract through the service: the lr a ZO job asked for is the lr its ranks report
// (typed progress, no schedule of the trainer's own), a LINEAR schedule follows its formula,
// keep_last is the number of checkpoints left, the latest checkpoint is the job's, and a
// resume_from that is not a checkpoint fails the job naming the path.
TEST_F(JobTest, WhatIsSubmittedIsWhatRuns) {
  StartWorker("alpha");
  auto job = [&](const std::string& name, const std::string& extra) {
    return FortyStepJob(name, /*log_interval=*/1, extra);
  };
  auto number = [](const std::string& json, const std::string& key, size_t from = 0) {
    const size_t at = json.find("\"" + key + "\": ", from);
    double value = std::nan("");
    if (at == std::string::npos) return value;
    std::string text = json.substr(at + key.size() + 4, 32);
    text = text.substr(text[0] == '"' ? 1 : 0);
    absl::SimpleAtod(text.substr(0, text.find_first_of("\",\n}")), &value);
    return value;
  };
  const std::string constant_dir = Area("alpha") + "/constant";
  ProcessResult constant = Cli({"job", "submit",
                                job("constant",
                                    "optimizer: {zeroth_order: {lr: 1e-5}}\ncheckpoint: {path: "
                                    "constant, interval_steps: 10, keep_last: 1}\n")});
  ASSERT_EQ(constant.exit_code, 0) << constant.err << constant.out;
  const size_t at = constant.out.find("submitted job ") + 14;
  const std::string id = constant.out.substr(at, constant.out.find(' ', at) - at);
  const std::string json = Cli({"job", "describe", id, "--output=json"}).out;
  const size_t progress = json.find("\"progress\"");
  ASSERT_NE(progress, std::string::npos) << json;
  EXPECT_EQ(number(json, "lr", progress), 1e-5) << json;
  const size_t latest = json.find("\"latest_checkpoint\"");
  ASSERT_NE(latest, std::string::npos) << json;
  EXPECT_EQ(number(json, "step", latest), 40) << json;
  EXPECT_THAT(json.substr(latest), HasSubstr(constant_dir + "/ckpt-0000000040"));
  std::vector<std::string> kept;
  if (DIR* d = opendir(constant_dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (std::string(e->d_name).rfind("ckpt-", 0) == 0) kept.push_back(e->d_name);
    }
    closedir(d);
  }
  EXPECT_THAT(kept, ::testing::ElementsAre("ckpt-0000000040"));
  ProcessResult listed = Cli({"job", "checkpoints", id});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr(constant_dir + "/ckpt-0000000040"));
  EXPECT_THAT(listed.out, ::testing::Not(HasSubstr("ckpt-0000000030")));  // keep_last: 1

  ProcessResult linear =
      Cli({"job", "submit",
           job("linear",
               "optimizer:\n  zeroth_order: {lr: 1e-5}\n  schedule: {kind: "
               "LR_SCHEDULE_KIND_LINEAR, warmup_steps: 4, min_lr_ratio: 0.25}\n")});
  ASSERT_EQ(linear.exit_code, 0) << linear.err << linear.out;
  const size_t lat = linear.out.find("submitted job ") + 14;
  const std::string linear_json =
      Cli({"job", "describe", linear.out.substr(lat, linear.out.find(' ', lat) - lat),
           "--output=json"})
          .out;
  // Step 40 is the step with 0-based index 39: p = (39 - 4) / (40 - 4).
  const double expected = 0.25e-5 + 0.75e-5 * (1.0 - 35.0 / 36.0);
  EXPECT_NEAR(number(linear_json, "lr", linear_json.find("\"progress\"")), expected, 1e-17)
      << linear_json;

  ProcessResult bad = Cli({"job", "submit",
                           job("bad-resume",
                               "optimizer: {zeroth_order: {lr: 1e-5}}\n"
                               "checkpoint: {resume_from: " +
                                   dir_ + "/no-such-checkpoint}\n")});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.out + bad.err, HasSubstr(dir_ + "/no-such-checkpoint"));
}

// A job resumed from another job's checkpoint ends bit for bit where the uninterrupted job
// ended, and `strata job export` brings each one's Hugging Face export to the user's machine.
TEST_F(JobTest, ResumeFromIsBitwiseAndTheExportDownloads) {
  StartWorker("alpha");
  auto job = [&](const std::string& name, const std::string& checkpoint) {
    return FortyStepJob(
        name, /*log_interval=*/10,
        absl::StrCat("optimizer: {zeroth_order: {lr: 1e-4}}\ncheckpoint: {", checkpoint,
                     "interval_steps: 20, export_safetensors: true}\n"));
  };
  ProcessResult full = Cli({"job", "submit", job("full", "path: full, ")});
  ASSERT_EQ(full.exit_code, 0) << full.err << full.out;
  ProcessResult resumed =
      Cli({"job", "submit", job("resumed", "path: resumed, resume_from: full/ckpt-0000000020, ")});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err << resumed.out;
  const size_t at = full.out.find("submitted job ") + 14;
  const std::string full_id = full.out.substr(at, full.out.find(' ', at) - at);
  const size_t rat = resumed.out.find("submitted job ") + 14;
  const std::string resumed_id = resumed.out.substr(rat, resumed.out.find(' ', rat) - rat);
  EXPECT_THAT(Cli({"job", "logs", resumed_id}).out, HasSubstr("starting at step 20"));

  ProcessResult exported = Cli({"job", "export", full_id, dir_ + "/full-export"});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_THAT(exported.out, HasSubstr("model.safetensors"));
  ASSERT_EQ(Cli({"job", "export", resumed_id, dir_ + "/resumed-export"}).exit_code, 0);
  const std::string want = ReadFileOrEmpty(Area("alpha") + "/full/export/model.safetensors");
  ASSERT_GT(want.size(), 1000u);
  EXPECT_TRUE(ReadFileOrEmpty(dir_ + "/full-export/model.safetensors") == want);
  EXPECT_TRUE(ReadFileOrEmpty(dir_ + "/resumed-export/model.safetensors") == want)
      << "the resumed job's weights differ from the uninterrupted job's";
  EXPECT_FALSE(ReadFileOrEmpty(dir_ + "/full-export/config.json").empty());
  // Only the owner can fetch it; a job without an export says why.
  ProcessResult theirs = Cli({"job", "export", full_id, dir_ + "/stolen"}, "bob-token");
  EXPECT_EQ(theirs.exit_code, 1);
  EXPECT_THAT(theirs.err, HasSubstr("NOT_FOUND"));
  EXPECT_TRUE(ReadFileOrEmpty(dir_ + "/stolen/model.safetensors").empty());
  ProcessResult none = Cli({"job", "submit", WriteJob("no-export", "", 10),
                            "--config=checkpoint.export_safetensors=false"});
  ASSERT_EQ(none.exit_code, 0) << none.err;
  const size_t nat = none.out.find("submitted job ") + 14;
  ProcessResult refused =
      Cli({"job", "export", none.out.substr(nat, none.out.find(' ', nat) - nat), dir_ + "/none"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("was not submitted with checkpoint.export_safetensors"));
}

}  // namespace
}  // namespace strata
