// The operations dashboard and the operator commands end to end over TLS: a coordinator (user
// tokens with an operator, --metrics_tls) and two workers run real jobs while headless Chromium
// (Debian's chromium, driven by dashboard_check.js) loads the dashboard page. A user sees only
// their own job, its progress moving and its curve, with no console errors and the token gone
// from the address bar; the operator sees every job, and a job name written as HTML stays text;
// without a token the page asks for one. `strata node drain` (operators only) moves a running
// ZO job to the other worker after a checkpoint (a worker's token may drain only that worker),
// and a worker stopped with SIGTERM drains itself the same way: the job finishes with weights
// byte-identical to an uninterrupted run.
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
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
constexpr char kCheck[] = "tests/e2e/dashboard_check.js";
constexpr char kHostileName[] = "<img src=x onerror=\"window.__strata_injected=true\">";

std::string NpmModules() {
  const char* env = std::getenv("STRATA_NPM_MODULES");
  return env != nullptr ? env : "/usr/local/share/strata/npm/node_modules";
}

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(TestTmpDir(), "/",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_EQ(mkdir(dir_.c_str(), 0755), 0) << dir_;
    std::ofstream(dir_ + "/tokens")
        << "alice-token alice\nbob-token bob\nroot-token root role=operator\n";
    std::ofstream(dir_ + "/worker-tokens") << "alpha-token alpha\nbeta-token beta\n";
    absl::StatusOr<ProcessResult> certs =
        RunProcess({"/bin/bash", "deploy/dev-certs.sh", dir_ + "/certs"}, dir_);
    ASSERT_TRUE(certs.ok() && certs->exit_code == 0) << (certs.ok() ? certs->err : "");
    ca_ = Absolute(dir_ + "/certs/ca.pem");
    tls_ = {"--tls_cert=" + dir_ + "/certs/server.pem",
            "--tls_key=" + dir_ + "/certs/server-key.pem"};
    absl::StatusOr<Subprocess> coordinator = Subprocess::Start(
        {kCoordinator, "--listen=localhost:0", "--port_file=" + dir_ + "/coordinator.port",
         "--data_dir=" + dir_ + "/coordinator", "--tokens_file=" + dir_ + "/tokens",
         "--worker_tokens_file=" + dir_ + "/worker-tokens", tls_[0], tls_[1], "--metrics_tls",
         "--data_roots=/usr/share/common-licenses", "--heartbeat_interval=200ms",
         "--heartbeat_timeout=3s", "--metrics_listen=localhost:0",
         "--metrics_port_file=" + dir_ + "/metrics.port"},
        dir_, "coordinator");
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    coordinator_ = std::make_unique<Subprocess>(*std::move(coordinator));
    const int port = WaitForPortFile(dir_ + "/coordinator.port", *coordinator_);
    ASSERT_GT(port, 0);
    address_ = absl::StrCat("localhost:", port);
    const int http = WaitForPortFile(dir_ + "/metrics.port", *coordinator_);
    ASSERT_GT(http, 0);
    dashboard_ = absl::StrCat("https://localhost:", http, "/");
    StartWorker("alpha");
    StartWorker("beta");
  }

  void StartWorker(const std::string& name) {
    const std::string token = dir_ + "/" + name + ".token";
    std::ofstream(token) << name << "-token\n";
    absl::StatusOr<Subprocess> worker = Subprocess::Start(
        {kWorker, "--coordinator=" + address_, "--name=" + name, "--listen=localhost:0",
         "--cores=1", "--work_dir=" + dir_ + "/work", "--data_roots=/usr/share/common-licenses",
         "--train_binary=" + Absolute(kTrain), "--advertise_address=127.0.0.1:7071", tls_[0],
         tls_[1], "--tls_ca=" + ca_, "--worker_token_file=" + token, "--metrics_listen=",
         "--drain_timeout=60s"},
        dir_, absl::StrCat(name, ++started_));
    ASSERT_TRUE(worker.ok()) << worker.status();
    workers_[name] = std::make_unique<Subprocess>(*std::move(worker));
  }

  ProcessResult Cli(std::vector<std::string> args, const std::string& user = "alice") {
    const std::string token = dir_ + "/" + user + ".user-token";
    std::ofstream(token) << user << "-token\n";
    args.insert(args.begin(),
                {kCli, "--coordinator=" + address_, "--token_file=" + token, "--tls_ca=" + ca_});
    absl::StatusOr<ProcessResult> result = RunProcess(args, dir_, absl::Minutes(3));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : ProcessResult();
  }

  // A ZO job on the tiny LLaMA over the GPL text (batch 32: seconds per thousand steps).
  std::string Submit(const std::string& name, int64_t steps, const std::string& user = "alice",
                     bool detach = true) {
    const std::string path = absl::StrCat(dir_, "/job", ++jobs_, ".yaml");
    std::ofstream(path) << absl::StrCat(
        "name: '", name, "'\nmodel:\n  config_json: '", ::strata::testing::kTinyLlamaConfigJson,
        "'\ndata: {train_paths: [/usr/share/common-licenses/GPL-3], batch_size: 32, seq_len: 16, "
        "eval_batches: 1}\noptimizer:\n  zeroth_order: {lr: 1e-4, epsilon: 1e-3}\n"
        "training: {max_steps: ",
        steps,
        ", log_interval: 20, threads: 1, seed: 3}\nresources: {cores_per_rank: 1}\n"
        "checkpoint: {path: ckpt-",
        jobs_, ", interval_steps: 250, export_safetensors: true}\n");
    std::vector<std::string> args = {"job", "submit", path};
    if (detach) args.push_back("--detach");
    ProcessResult r = Cli(args, user);
    EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
    const size_t at = r.out.find("submitted job ");
    if (at == std::string::npos) return "";
    return r.out.substr(at + 14, r.out.find(' ', at + 14) - at - 14);
  }

  nlohmann::json Describe(const std::string& id, const std::string& user = "alice") {
    const std::string out = Cli({"job", "describe", id, "--output=json"}, user).out;
    nlohmann::json json = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
    return json.is_discarded() ? nlohmann::json::object() : json;
  }

  template <typename Predicate>
  nlohmann::json DescribeUntil(const std::string& id, Predicate predicate,
                               const std::string& user = "alice") {
    const absl::Time deadline = absl::Now() + absl::Minutes(2);
    nlohmann::json job;
    while (absl::Now() < deadline) {
      job = Describe(id, user);
      if (predicate(job)) return job;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ADD_FAILURE() << "job " << id << " never matched; last: " << job.dump();
    return job;
  }

  static int64_t Step(const nlohmann::json& job) {
    int64_t step = 0;
    if (job.contains("progress") && job["progress"].contains("step")) {
      absl::SimpleAtoi(job["progress"]["step"].get<std::string>(), &step);
    }
    return step;
  }

  static std::string Worker(const nlohmann::json& job) {
    return job.contains("placements") ? job["placements"][0].value("worker_id", "") : "";
  }

  // The page as Chromium shows it with `token` (none: the login form).
  nlohmann::json Browse(const std::string& token, const std::string& watch_job,
                        const std::string& screenshot) {
    const nlohmann::json args = {
        {"url", dashboard_}, {"token", token}, {"watch_job", watch_job}, {"screenshot", screenshot}};
    absl::StatusOr<ProcessResult> run =
        RunProcess({"/usr/bin/node", kCheck, args.dump()}, dir_, absl::Minutes(2));
    EXPECT_TRUE(run.ok() && run->exit_code == 0)
        << (run.ok() ? run->err + run->out : run.status().ToString());
    if (!run.ok()) return nlohmann::json::object();
    nlohmann::json seen = nlohmann::json::parse(run->out, nullptr, false);
    EXPECT_FALSE(seen.is_discarded()) << run->out;
    return seen.is_discarded() ? nlohmann::json::object() : seen;
  }

  std::string dir_, address_, ca_, dashboard_;
  std::vector<std::string> tls_;
  int started_ = 0, jobs_ = 0;
  std::unique_ptr<Subprocess> coordinator_;
  std::map<std::string, std::unique_ptr<Subprocess>> workers_;
};

TEST_F(DashboardTest, ChromiumShowsEachUserTheirJobsMovingOverHttps) {
  struct stat st;
  if (stat("/usr/bin/chromium", &st) != 0 ||
      stat((NpmModules() + "/playwright-core").c_str(), &st) != 0) {
    GTEST_SKIP() << "needs Debian's chromium and the npm package playwright-core "
                    "(deploy/setup.sh installs both)";
  }
  const std::string alice = Submit("alice-finetune", 1000000);
  const std::string bob = Submit(kHostileName, 1000000, "bob");
  DescribeUntil(alice, [](const nlohmann::json& j) { return Step(j) >= 40; });
  DescribeUntil(bob, [](const nlohmann::json& j) { return Step(j) >= 40; }, "bob");
  const char* outputs = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  const std::string shots = outputs != nullptr ? outputs : dir_;

  const nlohmann::json user = Browse("alice-token", alice, shots + "/dashboard-user.png");
  EXPECT_EQ(user["console_errors"], nlohmann::json::array()) << user.dump();
  EXPECT_EQ(user["page_errors"], nlohmann::json::array());
  EXPECT_EQ(user["failed_requests"], nlohmann::json::array());
  ASSERT_TRUE(user.contains("first") && user.contains("later")) << user.dump();
  EXPECT_EQ(user["first"].size(), 1u) << "a user sees only their own jobs";
  ASSERT_TRUE(user["later"].contains(alice));
  EXPECT_FALSE(user.contains("watch_timeout")) << "the progress never moved";
  EXPECT_GT(user["later"][alice]["step"].get<int64_t>(),
            user["first"][alice]["step"].get<int64_t>());
  EXPECT_EQ(user["later"][alice]["state"], "RUNNING");
  EXPECT_GE(user["curves"].get<int>(), 1);
  EXPECT_EQ(user["workers"], nlohmann::json({"alpha", "beta"}));
  EXPECT_THAT(user["address"].get<std::string>(), Not(HasSubstr("token")));
  EXPECT_FALSE(user["login_visible"].get<bool>());

  const nlohmann::json root = Browse("root-token", "", shots + "/dashboard-operator.png");
  EXPECT_EQ(root["console_errors"], nlohmann::json::array()) << root.dump();
  EXPECT_EQ(root["page_errors"], nlohmann::json::array());
  ASSERT_TRUE(root.contains("later")) << root.dump();
  EXPECT_TRUE(root["later"].contains(alice) && root["later"].contains(bob)) << root.dump();
  // The hostile name is shown as text: no element was made from it, no script ran.
  EXPECT_THAT(root["later"][bob]["text"].get<std::string>(), HasSubstr(kHostileName));
  EXPECT_EQ(root["images"], 0);
  EXPECT_FALSE(root["injected"].get<bool>());
  if (const char* keep = std::getenv("STRATA_DASHBOARD_SCREENSHOT"); keep != nullptr) {
    std::ofstream(keep) << ReadFileOrEmpty(shots + "/dashboard-operator.png");
  }

  const nlohmann::json nobody = Browse("", "", "");
  EXPECT_TRUE(nobody.value("login_visible", false)) << nobody.dump();
  EXPECT_EQ(nobody["console_errors"].size(), 1u)  // The 401 of /api/v1/dashboard, nothing else.
      << nobody.dump();
  EXPECT_EQ(nobody["page_errors"], nlohmann::json::array());
}

TEST_F(DashboardTest, DrainAndAStoppedWorkerMoveAJobAfterACheckpointAndLoseNoStep) {
  // Reference: the same job uninterrupted.
  const std::string reference = Submit("reference", 3000, "alice", /*detach=*/false);
  const std::string id = Submit("moved", 3000);
  nlohmann::json job = DescribeUntil(id, [](const nlohmann::json& j) { return Step(j) >= 400; });
  ASSERT_LT(Step(job), 3000) << "finished before it could be drained";
  const std::string first = Worker(job);
  const std::string second = first == "alpha" ? "beta" : "alpha";

  ProcessResult refused = Cli({"node", "drain", first});  // Alice is not an operator.
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, HasSubstr("not an operator"));
  // A worker's own token drains only that worker and cordons nothing.
  ProcessResult foreign = Cli({"node", "drain", first}, second);
  EXPECT_NE(foreign.exit_code, 0);
  EXPECT_THAT(foreign.err, HasSubstr("worker " + second + " may drain only itself"));
  ProcessResult cordon = Cli({"node", "cordon", first}, second);
  EXPECT_NE(cordon.exit_code, 0);
  EXPECT_THAT(cordon.err, HasSubstr("UNAUTHENTICATED"));
  EXPECT_THAT(Cli({"node", "list"}, "root").out, Not(HasSubstr("cordoned")));
  ProcessResult drained = Cli({"node", "drain", first}, "root");
  ASSERT_EQ(drained.exit_code, 0) << drained.err;
  EXPECT_THAT(drained.out, HasSubstr(id));
  EXPECT_THAT(Cli({"node", "list"}, "root").out, HasSubstr("cordoned"));
  job = DescribeUntil(id, [&](const nlohmann::json& j) {
    return Worker(j) == second && j.value("state", "") == "JOB_STATE_RUNNING";
  });
  EXPECT_EQ(job.value("restarts", 0), 0);

  // Uncordon the first worker, then stop the second with SIGTERM: it drains itself, waits for
  // its rank to checkpoint and exit, and exits 0; the job moves back.
  ASSERT_EQ(Cli({"node", "uncordon", first}, "root").exit_code, 0);
  DescribeUntil(id, [&](const nlohmann::json& j) { return Step(j) >= 1500 || Step(j) == 3000; });
  ASSERT_TRUE(workers_[second]->Signal(SIGTERM).ok());
  absl::StatusOr<ProcessResult> exited = workers_[second]->Wait(absl::Seconds(90));
  ASSERT_TRUE(exited.ok()) << exited.status();
  EXPECT_EQ(exited->exit_code, 0) << exited->err;
  EXPECT_THAT(exited->err, HasSubstr("draining: 1 job(s)"));

  ProcessResult waited = Cli({"job", "wait", id});
  EXPECT_EQ(waited.exit_code, 0) << waited.err << waited.out;
  job = Describe(id);
  EXPECT_EQ(Step(job), 3000);
  EXPECT_EQ(job.value("restarts", 0), 0);
  EXPECT_EQ(Worker(job), first);
  const std::string logs = Cli({"job", "logs", id}).out;
  EXPECT_THAT(logs, HasSubstr("is draining (operator root)"));
  EXPECT_THAT(logs, HasSubstr("is draining (worker shutting down)"));
  EXPECT_THAT(logs, HasSubstr("waiting to restart from the checkpoint at step"));
  // No step lost or repeated: the same bytes as the uninterrupted run.
  const std::string want =
      ReadFileOrEmpty(dir_ + "/work/users/alice/ckpt-1/export/model.safetensors");
  const std::string got =
      ReadFileOrEmpty(dir_ + "/work/users/alice/ckpt-2/export/model.safetensors");
  ASSERT_GT(want.size(), 1000u);
  EXPECT_TRUE(want == got) << "weights differ after the moves";

  // The stopped worker comes back ready: leaving is not a cordon.
  StartWorker(second);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  std::string list;
  while (absl::Now() < deadline) {
    list = Cli({"node", "list"}, "root").out;
    if (list.find(second) != std::string::npos && list.find("cordoned") == std::string::npos) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_THAT(list, HasSubstr(second));
  EXPECT_THAT(list, Not(HasSubstr("cordoned")));
  (void)reference;
}

}  // namespace
}  // namespace strata
