// The CLI against a fake JobService on a real gRPC server (localhost:0): `job describe` shows
// each evaluation metric's latest and best value with their steps (the loss's on the eval loss
// line), and its JSON output carries them; `job wait` ends with the same figures; a job without
// evaluations shows "-" and no metric lines.
#include "services/cli/cli.h"

#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/strata/v1/job_service.grpc.pb.h"
#include "services/common/grpc_server.h"

namespace strata {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Answers Get with `job`, and Watch with one event carrying it.
class FakeJobService : public v1::JobService::Service {
 public:
  explicit FakeJobService(v1::Job job) : job_(std::move(job)) {}

  grpc::Status Get(grpc::ServerContext*, const v1::GetJobRequest* request, v1::Job* job) override {
    if (request->job_id() != job_.id()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no job");
    *job = job_;
    return grpc::Status::OK;
  }

  grpc::Status Watch(grpc::ServerContext*, const v1::WatchJobRequest* request,
                     grpc::ServerWriter<v1::JobEvent>* writer) override {
    if (request->job_id() != job_.id()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no job");
    v1::JobEvent event;
    event.set_job_id(job_.id());
    *event.mutable_job() = job_;
    writer->Write(event);
    return grpc::Status::OK;
  }

 private:
  const v1::Job job_;
};

v1::EvalMetricSummary Summary(const std::string& name, double latest, int64_t latest_step,
                              double best, int64_t best_step) {
  v1::EvalMetricSummary s;
  s.set_name(name);
  s.set_latest(latest);
  s.set_latest_step(latest_step);
  s.set_best(best);
  s.set_best_step(best_step);
  return s;
}

// A completed task job: evaluations at steps 20 and 40.
v1::Job TaskJob() {
  v1::Job job;
  job.set_id("j-00000000a1");
  job.mutable_spec()->set_name("sst2");
  job.mutable_spec()->mutable_training()->set_max_steps(40);
  job.set_state(v1::JOB_STATE_COMPLETED);
  job.set_attempt(1);
  v1::JobProgress* p = job.mutable_progress();
  p->set_step(40);
  p->set_loss(0.5);
  p->set_eval_step(40);
  p->set_eval_loss(0.625);
  (*p->mutable_eval_metrics())["accuracy"] = 0.8125;
  (*p->mutable_eval_metrics())["f1"] = 0.75;
  *job.add_eval_metrics() = Summary("accuracy", 0.8125, 40, 0.875, 20);
  *job.add_eval_metrics() = Summary("f1", 0.75, 40, 0.75, 40);
  *job.add_eval_metrics() = Summary("loss", 0.625, 40, 0.5, 20);
  return job;
}

class CliTest : public ::testing::Test {
 protected:
  void Serve(v1::Job job) {
    service_ = std::make_unique<FakeJobService>(std::move(job));
    GrpcServer::Options options;
    options.listen_address = "127.0.0.1:0";
    options.services = {{v1::JobService::service_full_name(), service_.get()}};
    absl::StatusOr<std::unique_ptr<GrpcServer>> server = GrpcServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    options_.coordinator = "127.0.0.1:" + std::to_string(server_->port());
  }

  // Runs `args`; stdout, with the exit code in *code.
  std::string Run(const std::vector<std::string>& args, int* code) {
    std::ostringstream out, err;
    *code = RunCli(args, options_, out, err);
    EXPECT_EQ(err.str(), "");
    return out.str();
  }

  CliOptions options_;
  std::unique_ptr<FakeJobService> service_;
  std::unique_ptr<GrpcServer> server_;
};

TEST_F(CliTest, DescribeShowsEachMetricsLatestAndBestWithSteps) {
  ASSERT_NO_FATAL_FAILURE(Serve(TaskJob()));
  int code = -1;
  const std::string out = Run({"job", "describe", "j-00000000a1"}, &code);
  EXPECT_EQ(code, kCliOk);
  EXPECT_THAT(out, HasSubstr("eval loss:      0.6250 at step 40 (best 0.5000 at step 20)\n"));
  EXPECT_THAT(out, HasSubstr("eval accuracy:  0.8125 at step 40 (best 0.8750 at step 20)\n"));
  EXPECT_THAT(out, HasSubstr("eval f1:        0.7500 at step 40 (best 0.7500 at step 40)\n"));
  // The metric lines come between the eval loss and the lr.
  EXPECT_LT(out.find("eval loss:"), out.find("eval accuracy:"));
  EXPECT_LT(out.find("eval f1:"), out.find("lr:"));
}

TEST_F(CliTest, DescribeAsJsonCarriesTheMetrics) {
  ASSERT_NO_FATAL_FAILURE(Serve(TaskJob()));
  options_.output = "json";
  int code = -1;
  const nlohmann::json job = nlohmann::json::parse(Run({"job", "describe", "j-00000000a1"}, &code));
  EXPECT_EQ(code, kCliOk);
  EXPECT_EQ(job["progress"]["eval_step"], "40");  // int64 as a JSON string (proto3 JSON).
  EXPECT_EQ(job["progress"]["eval_metrics"], nlohmann::json({{"accuracy", 0.8125}, {"f1", 0.75}}));
  ASSERT_EQ(job["eval_metrics"].size(), 3u);
  EXPECT_EQ(job["eval_metrics"][0], nlohmann::json({{"name", "accuracy"},
                                                    {"latest", 0.8125},
                                                    {"latest_step", "40"},
                                                    {"best", 0.875},
                                                    {"best_step", "20"}}));
}

TEST_F(CliTest, WaitEndsWithTheEvaluations) {
  ASSERT_NO_FATAL_FAILURE(Serve(TaskJob()));
  int code = -1;
  const std::string out = Run({"job", "wait", "j-00000000a1"}, &code);
  EXPECT_EQ(code, kCliOk);
  EXPECT_THAT(out, HasSubstr("job j-00000000a1 COMPLETED after 40 steps: loss 0.5000, eval loss "
                             "0.6250 (best 0.5000 at step 20), eval accuracy 0.8125 (best 0.8750 "
                             "at step 20), eval f1 0.7500 (best 0.7500 at step 40)\n"));
}

TEST_F(CliTest, AJobWithoutEvaluationsShowsNone) {
  v1::Job job = TaskJob();
  job.clear_eval_metrics();
  job.mutable_progress()->clear_eval_metrics();
  job.mutable_progress()->set_eval_step(0);
  job.mutable_progress()->set_eval_loss(std::nan(""));
  ASSERT_NO_FATAL_FAILURE(Serve(job));
  int code = -1;
  const std::string out = Run({"job", "describe", "j-00000000a1"}, &code);
  EXPECT_EQ(code, kCliOk);
  EXPECT_THAT(out, HasSubstr("eval loss:   -\n"));
  EXPECT_THAT(out, Not(HasSubstr("accuracy")));
  EXPECT_THAT(Run({"job", "wait", "j-00000000a1"}, &code),
              HasSubstr("COMPLETED after 40 steps: loss 0.5000\n"));
}

}  // namespace
}  // namespace strata
