// A real local cluster in separate processes: strata-coordinator, two strata-worker daemons and
// the strata CLI over loopback. Workers register and appear in `strata node list`; a worker
// killed with SIGKILL is declared lost after the heartbeat timeout; SIGTERM stops the
// coordinator cleanly.
#include <signal.h>
#include <sys/stat.h>

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
constexpr char kEdge[] = "services/edge/strata-edge";

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Each test gets its own directory: port files and logs of earlier tests must not be read.
    dir_ = absl::StrCat(TestTmpDir(), "/",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_EQ(mkdir(dir_.c_str(), 0755), 0) << dir_;
    const std::string port_file = dir_ + "/coordinator.port";
    absl::StatusOr<Subprocess> coordinator = Subprocess::Start(
        {kCoordinator, "--listen=localhost:0", "--port_file=" + port_file,
         "--heartbeat_interval=100ms", "--heartbeat_timeout=1s", "--metrics_listen=localhost:0",
         "--serve_plaintext", "--allow_unauthenticated_workers", "--open_enrollment"},
        dir_, "coordinator");
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    coordinator_ = std::make_unique<Subprocess>(*std::move(coordinator));
    const int port = WaitForPortFile(port_file, *coordinator_);
    ASSERT_GT(port, 0);
    address_ = absl::StrCat("localhost:", port);
  }

  Subprocess StartWorker(const std::string& name) {
    absl::StatusOr<Subprocess> worker = Subprocess::Start(
        {kWorker, "--coordinator=" + address_, "--name=" + name, "--listen=localhost:0",
         "--cores=2", "--nvme_paths=" + dir_ + "/nvme-" + name, "--metrics_listen=localhost:0",
         "--insecure", "--serve_plaintext"},
        dir_, name);
    EXPECT_TRUE(worker.ok()) << worker.status();
    return *std::move(worker);
  }

  ProcessResult Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {kCli, "--coordinator=" + address_, "--insecure"});
    absl::StatusOr<ProcessResult> result = RunProcess(args, dir_);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : ProcessResult();
  }

  // Polls `strata node list` (with `extra` flags) until `predicate(stdout)` holds.
  template <typename Predicate>
  std::string NodeListUntil(Predicate predicate, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"node", "list"};
    args.insert(args.end(), extra.begin(), extra.end());
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    std::string out;
    while (absl::Now() < deadline) {
      out = Cli(args).out;
      if (predicate(out)) return out;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ADD_FAILURE() << "node list never matched; last output:\n" << out;
    return out;
  }

  std::string dir_;
  std::string address_;
  std::unique_ptr<Subprocess> coordinator_;
};

TEST_F(ClusterTest, HealthAnswersServing) {
  ProcessResult result = Cli({"health"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("SERVING"));
  result = Cli({"health", "--service=strata.v1.JobService"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  result = Cli({"health", "--service=strata.v1.Bogus"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("NOT_FOUND"));
}

TEST_F(ClusterTest, WorkersRegisterAndAKilledWorkerIsDeclaredLost) {
  Subprocess alpha = StartWorker("alpha");
  Subprocess beta = StartWorker("beta");
  const auto both = [](const std::string& out) {
    return out.find("alpha") != std::string::npos && out.find("beta") != std::string::npos;
  };
  std::string table = NodeListUntil(both);
  EXPECT_THAT(table, HasSubstr("ready"));
  EXPECT_THAT(table, HasSubstr("NVME"));

  ProcessResult json = Cli({"node", "list", "--output=json"});
  EXPECT_EQ(json.exit_code, 0);
  EXPECT_THAT(json.out, HasSubstr("\"name\": \"alpha\""));
  EXPECT_THAT(json.out, HasSubstr("\"cores\": 2"));

  ASSERT_TRUE(beta.Signal(SIGKILL).ok());
  table = NodeListUntil([](const std::string& out) {
    return out.find("alpha") != std::string::npos && out.find("beta") == std::string::npos;
  });
  std::string all = Cli({"node", "list", "--all"}).out;
  EXPECT_THAT(all, HasSubstr("beta"));
  EXPECT_THAT(all, HasSubstr("lost"));

  // A clean stop of the surviving worker: SIGTERM, exit 0.
  ASSERT_TRUE(alpha.Signal(SIGTERM).ok());
  absl::StatusOr<ProcessResult> exited = alpha.Wait(absl::Seconds(20));
  ASSERT_TRUE(exited.ok()) << exited.status();
  EXPECT_EQ(exited->exit_code, 0) << exited->err;
}

TEST_F(ClusterTest, EdgeClientGetsAClearAnswerForAJobThatDoesNotExist) {
  absl::StatusOr<ProcessResult> result =
      RunProcess({kEdge, "--coordinator=" + address_, "--job=fed-1", "--client_id=phone-1",
                  "--insecure", "--allow_token_over_plaintext",
                  "--data=/usr/share/common-licenses/BSD", "--state_dir=" + dir_ + "/edge"},
                 dir_);
  ASSERT_TRUE(result.ok());
  // The client must say why, not hang or crash.
  EXPECT_EQ(result->exit_code, 1);
  EXPECT_THAT(result->err, HasSubstr("Register"));
  EXPECT_THAT(result->err, HasSubstr("NOT_FOUND"));
}

TEST_F(ClusterTest, CoordinatorStopsCleanlyOnSigterm) {
  ASSERT_TRUE(coordinator_->Signal(SIGTERM).ok());
  absl::StatusOr<ProcessResult> exited = coordinator_->Wait(absl::Seconds(20));
  ASSERT_TRUE(exited.ok()) << exited.status();
  EXPECT_EQ(exited->exit_code, 0) << exited->err;
  EXPECT_THAT(exited->err, HasSubstr("shutting down"));
  ProcessResult health = Cli({"health", "--timeout=2s"});
  EXPECT_EQ(health.exit_code, 1);
  EXPECT_THAT(health.out, Not(HasSubstr("SERVING")));
}

TEST(CoordinatorStartTest, BusyPortIsReportedAndExitsNonZero) {
  const std::string dir = TestTmpDir();
  absl::StatusOr<Subprocess> first =
      Subprocess::Start({kCoordinator, "--listen=localhost:0", "--port_file=" + dir + "/first.port",
                         "--serve_plaintext", "--allow_unauthenticated_workers",
                         "--metrics_listen=", "--data_dir=" + dir + "/first"},
                        dir, "first");
  ASSERT_TRUE(first.ok());
  const int port = WaitForPortFile(dir + "/first.port", *first);
  ASSERT_GT(port, 0);
  absl::StatusOr<ProcessResult> second = RunProcess(
      {kCoordinator, absl::StrCat("--listen=localhost:", port), "--serve_plaintext",
       "--allow_unauthenticated_workers", "--metrics_listen=", "--data_dir=" + dir + "/second"},
      dir);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->exit_code, 1);
  EXPECT_THAT(second->err, HasSubstr(absl::StrCat("localhost:", port)));
}

// Secure by default: no worker credentials, or a client-side --insecure (STRATA_INSECURE=1)
// mistaken for a server flag, is refused at start-up with the reason.
TEST(CoordinatorStartTest, RefusesToStartOpenByMistake) {
  const std::string dir = TestTmpDir();
  absl::StatusOr<ProcessResult> no_workers =
      RunProcess({kCoordinator, "--listen=localhost:0", "--serve_plaintext",
                  "--metrics_listen=", "--data_dir=" + dir + "/open"},
                 dir);
  ASSERT_TRUE(no_workers.ok());
  EXPECT_EQ(no_workers->exit_code, 2);
  EXPECT_THAT(no_workers->err, HasSubstr("workers must be authenticated"));
  absl::StatusOr<ProcessResult> client_flag = RunProcess(
      {kCoordinator, "--listen=localhost:0", "--insecure", "--allow_unauthenticated_workers",
       "--metrics_listen=", "--data_dir=" + dir + "/plain"},
      dir);
  ASSERT_TRUE(client_flag.ok());
  EXPECT_NE(client_flag->exit_code, 0);
  EXPECT_THAT(client_flag->err, HasSubstr("TLS needs --tls_cert and --tls_key"));
}

}  // namespace
}  // namespace strata
