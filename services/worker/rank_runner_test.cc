// RankRunner with real rank processes against a fake coordinator served over gRPC on loopback:
// a strata-train rank runs the RunConfig built from its StartRank and its typed reports arrive
// as the coordinator's RPCs (progress with the requested lr, every ZO step record, each
// checkpoint, a completed exit); a rank that ignores SIGTERM is killed when the graceful stop's
// grace runs out; a rank that writes garbage on its report channel is killed and its exit says
// why.
#include "services/worker/rank_runner.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "services/common/grpc_server.h"
#include "tests/testing/subprocess.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

// The coordinator's report RPCs, recorded.
class FakeCoordinator : public v1::WorkerService::Service {
 public:
  grpc::Status ReportProgress(grpc::ServerContext*, const v1::ProgressReport* r,
                              v1::ReportAck*) override {
    absl::MutexLock lock(&mu_);
    if (r->has_progress() && r->progress().step() > 0) progress_.push_back(r->progress());
    for (const v1::LogLine& l : r->logs()) lines_.push_back(l.text());
    return grpc::Status::OK;
  }
  grpc::Status ReportStepLog(grpc::ServerContext*, const v1::StepLogReport* r,
                             v1::StepLogAck*) override {
    absl::MutexLock lock(&mu_);
    for (const v1::ZoStepRecord& s : r->records()) steps_.push_back(s);
    return grpc::Status::OK;
  }
  grpc::Status ReportCheckpoint(grpc::ServerContext*, const v1::CheckpointReport* r,
                                v1::ReportAck*) override {
    absl::MutexLock lock(&mu_);
    checkpoints_.push_back(r->checkpoint());
    return grpc::Status::OK;
  }
  grpc::Status ReportRankExit(grpc::ServerContext*, const v1::RankExit* r,
                              v1::ReportAck*) override {
    absl::MutexLock lock(&mu_);
    exits_.push_back(*r);
    return grpc::Status::OK;
  }

  // The first exit report, waiting up to `timeout`.
  std::optional<v1::RankExit> AwaitExit(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto reported = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !exits_.empty(); };
    if (!mu_.AwaitWithTimeout(absl::Condition(&reported), timeout)) return std::nullopt;
    return exits_.front();
  }

  mutable absl::Mutex mu_;
  std::vector<v1::JobProgress> progress_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ZoStepRecord> steps_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::CheckpointInfo> checkpoints_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::RankExit> exits_ ABSL_GUARDED_BY(mu_);
};

class RankRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GrpcServer::Options server_options;
    server_options.listen_address = "localhost:0";
    server_options.services = {{v1::WorkerService::service_full_name(), &coordinator_}};
    server_ = *GrpcServer::Start(server_options);
    stub_ = v1::WorkerService::NewStub(grpc::CreateChannel(
        absl::StrCat("localhost:", server_->port()), grpc::InsecureChannelCredentials()));
    dir_ = absl::StrCat(testing::TestTmpDir(), "/",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    mkdir(dir_.c_str(), 0755);
  }

  std::unique_ptr<RankRunner> Runner(const std::string& train_binary) {
    RankRunner::Options options;
    options.train_binary = train_binary;
    options.work_dir = dir_;
    options.data_roots = {"/usr/share/common-licenses"};
    options.nvme_paths = {dir_ + "/nvme"};
    options.stop_grace = absl::Milliseconds(300);
    options.report_interval = absl::Milliseconds(50);
    return std::make_unique<RankRunner>(options, stub_.get());
  }

  // An executable shell script.
  std::string Script(const std::string& name, const std::string& body) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    chmod(path.c_str(), 0755);
    return path;
  }

  static v1::StartRank Start(int64_t steps) {
    v1::StartRank start;
    start.mutable_ref()->set_job_id("j-1");
    start.mutable_ref()->set_attempt(1);
    start.set_world_size(1);
    v1::JobSpec& spec = *start.mutable_spec();
    spec.set_name("rank-runner");
    spec.mutable_model()->set_config_json(testing::kTinyLlamaConfigJson);
    spec.mutable_data()->add_train_paths("/usr/share/common-licenses/GPL-3");
    spec.mutable_data()->set_format(v1::DATA_FORMAT_TEXT);
    spec.mutable_data()->set_batch_size(2);
    spec.mutable_data()->set_seq_len(16);
    spec.mutable_data()->set_eval_batches(1);
    spec.mutable_optimizer()->mutable_zeroth_order()->set_lr(1e-5);
    spec.mutable_training()->set_max_steps(steps);
    spec.mutable_training()->set_log_interval(1);
    spec.mutable_checkpoint()->set_interval_steps(3);
    return start;
  }

  FakeCoordinator coordinator_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  std::string dir_;
};

TEST_F(RankRunnerTest, ARankRunsItsRunConfigAndItsTypedReportsArrive) {
  auto runner =
      Runner(std::string(std::getenv("TEST_SRCDIR")) + "/strata/services/trainer/strata-train");
  ASSERT_TRUE(runner->Start(Start(6), "w1").ok());
  std::optional<v1::RankExit> exit = coordinator_.AwaitExit(absl::Minutes(2));
  ASSERT_TRUE(exit.has_value());
  EXPECT_TRUE(exit->completed()) << exit->error();
  EXPECT_EQ(exit->exit_code(), 0);
  EXPECT_EQ(exit->worker_id(), "w1");
  absl::MutexLock lock(&coordinator_.mu_);
  ASSERT_FALSE(coordinator_.progress_.empty());
  EXPECT_EQ(coordinator_.progress_.back().step(), 6);
  for (const v1::JobProgress& p : coordinator_.progress_) EXPECT_EQ(p.lr(), 1e-5);
  ASSERT_EQ(coordinator_.steps_.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(coordinator_.steps_[i].step(), i + 1);
  std::vector<int64_t> checkpoints;
  for (const v1::CheckpointInfo& c : coordinator_.checkpoints_) checkpoints.push_back(c.step());
  EXPECT_THAT(checkpoints, ::testing::ElementsAre(0, 3, 6));
  // The human-readable lines went to the job's log, not into the reports' fields.
  EXPECT_THAT(coordinator_.lines_, ::testing::Contains(HasSubstr("step 6/6 | loss")));
  EXPECT_TRUE(
      access((dir_ + "/users/anonymous/jobs/j-1/run-config-a1-r0.textproto").c_str(), R_OK) == 0);
  // The rank's offload scratch is gone once it ended; the worker's NVMe path stays.
  EXPECT_TRUE(access((dir_ + "/nvme").c_str(), F_OK) == 0);
  EXPECT_FALSE(access((dir_ + "/nvme/strata-j-1-a1-r0").c_str(), F_OK) == 0);
}

// Names and paths from the coordinator are checked, not trusted: a job id or owner that is not
// a plain name, or a spec path outside this worker's roots, is refused before anything runs.
TEST_F(RankRunnerTest, AStartOrderOutsideTheWorkersRootsIsRefused) {
  auto runner = Runner(Script("never-runs", "touch '" + dir_ + "/ran'; exit 0"));
  v1::StartRank escape = Start(6);
  escape.mutable_ref()->set_job_id("../../etc");
  EXPECT_THAT(runner->Start(escape, "w1").message(), HasSubstr("is not a safe name"));
  v1::StartRank owner = Start(6);
  owner.set_owner("../bob");
  EXPECT_THAT(runner->Start(owner, "w1").message(), HasSubstr("is not a safe name"));
  v1::StartRank data = Start(6);
  data.mutable_spec()->mutable_data()->set_train_paths(0, "/etc/passwd");
  EXPECT_THAT(runner->Start(data, "w1").message(), HasSubstr("spec.data.train_paths[0]"));
  v1::StartRank write = Start(6);
  write.mutable_spec()->mutable_checkpoint()->set_path("/tmp/elsewhere");
  EXPECT_THAT(runner->Start(write, "w1").message(), HasSubstr("must be relative"));
  EXPECT_FALSE(access((dir_ + "/ran").c_str(), F_OK) == 0);
}

TEST_F(RankRunnerTest, AGracefulStopEndsInSigkillWhenTheRankIgnoresSigterm) {
  auto runner = Runner(Script("ignores-term", "trap '' TERM\necho ready\nsleep 60"));
  ASSERT_TRUE(runner->Start(Start(6), "w1").ok());
  absl::SleepFor(absl::Milliseconds(300));
  v1::StopRank stop;
  *stop.mutable_ref() = Start(6).ref();
  stop.set_graceful(true);
  const absl::Time stopped = absl::Now();
  runner->Stop(stop);
  std::optional<v1::RankExit> exit = coordinator_.AwaitExit(absl::Seconds(20));
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->signal(), SIGKILL);
  EXPECT_FALSE(exit->completed());
  EXPECT_EQ(exit->error(), "");  // Stopped on request: not an error.
  EXPECT_GE(absl::Now() - stopped, absl::Milliseconds(300));
  EXPECT_TRUE(runner->Running().empty());
}

TEST_F(RankRunnerTest, GarbageOnTheReportChannelKillsTheRankAndSaysWhy) {
  auto runner = Runner(Script("garbage", "printf '\\377\\377\\377\\377\\377\\377' >&3\nsleep 60"));
  ASSERT_TRUE(runner->Start(Start(6), "w1").ok());
  std::optional<v1::RankExit> exit = coordinator_.AwaitExit(absl::Seconds(20));
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->signal(), SIGKILL);
  EXPECT_FALSE(exit->completed());
  EXPECT_THAT(exit->error(), HasSubstr("report channel"));
}

}  // namespace
}  // namespace strata
