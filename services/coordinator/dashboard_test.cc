// The dashboard's data and pages over real HTTP on loopback, with a real JobManager, SQLite
// store and registry: a user sees the workers and only their own jobs; an operator sees every
// job; a job's latest task metrics come with their best; a missing or unknown token gets 401
// and no data; the page, script and style are served from the binary with a
// Content-Security-Policy that allows nothing from elsewhere.
#include "services/coordinator/dashboard.h"

#include <httplib.h>

#include <cmath>
#include <cstdlib>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace strata {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/dashboard";
    std::system(("rm -rf " + dir).c_str());
    store_ = *JobStore::Open(dir);
    registry_ = *WorkerRegistry::Create({});
    JobManager::Options options;
    options.store = store_.get();
    options.registry = registry_.get();
    options.data_roots = {"/data"};
    manager_ = *JobManager::Create(options);
    v1::RegisterWorkerRequest worker;
    worker.set_name("w1");
    worker.mutable_capacity()->set_cores(8);
    worker.mutable_capacity()->set_memory_bytes(int64_t{16} << 30);
    ASSERT_TRUE(registry_->Register(worker).ok());
    alice_job_ = Submit("alice-run", "alice");
    bob_job_ = Submit("<img src=x onerror=alert(1)>", "bob");
    sources_ = {manager_.get(), registry_.get(), nullptr, &tokens_, 20};
  }

  std::string Submit(const std::string& name, const std::string& owner) {
    v1::JobSpec s;
    s.set_name(name);
    s.mutable_model()->set_config_json("{}");
    s.mutable_data()->add_train_paths("/data/train.txt");
    s.mutable_data()->set_batch_size(2);
    s.mutable_data()->set_seq_len(8);
    s.mutable_optimizer()->mutable_zeroth_order()->set_lr(1e-4);
    s.mutable_training()->set_max_steps(100);
    s.mutable_resources()->set_cores_per_rank(1);
    absl::StatusOr<v1::Job> job = manager_->Submit(s, "", owner);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? job->id() : "";
  }

  static std::vector<std::string> JobIds(const nlohmann::json& data) {
    std::vector<std::string> ids;
    for (const auto& job : data["jobs"]) ids.push_back(job["id"]);
    return ids;
  }

  std::unique_ptr<JobStore> store_;
  std::unique_ptr<WorkerRegistry> registry_;
  std::unique_ptr<JobManager> manager_;
  const TokenTable tokens_{{{"ta", "alice"}, {"tb", "bob"}, {"tr", "root"}}, {}, {}, {"root"}};
  std::string alice_job_, bob_job_;
  DashboardSources sources_;
};

TEST_F(DashboardTest, UsersSeeTheirOwnJobsAndOperatorsSeeAll) {
  const nlohmann::json alice = nlohmann::json::parse(DashboardJson(sources_, "alice", false));
  EXPECT_EQ(JobIds(alice), std::vector<std::string>{alice_job_});
  EXPECT_EQ(alice["user"], "alice");
  EXPECT_FALSE(alice["operator"]);
  ASSERT_EQ(alice["workers"].size(), 1u);
  EXPECT_EQ(alice["workers"][0]["name"], "w1");
  EXPECT_EQ(alice["workers"][0]["state"], "ready");
  EXPECT_EQ(alice["workers"][0]["cores"], 8);
  EXPECT_EQ(alice["workers"][0]["ranks"], 2);  // Both jobs' ranks: counts, not whose.
  EXPECT_EQ(alice["workers"][0]["free_cores"], 6);
  const nlohmann::json& job = alice["jobs"][0];
  EXPECT_EQ(job["name"], "alice-run");
  EXPECT_EQ(job["state"], "STARTING");
  EXPECT_EQ(job["max_steps"], 100);
  EXPECT_EQ(job["workers"], nlohmann::json({"w1"}));
  EXPECT_FALSE(job["events"].empty());

  const nlohmann::json root = nlohmann::json::parse(DashboardJson(sources_, "root", true));
  EXPECT_EQ(JobIds(root), (std::vector<std::string>{alice_job_, bob_job_}));
  ASSERT_TRUE(manager_->SetCordoned("w1", true).ok());
  EXPECT_EQ(nlohmann::json::parse(DashboardJson(sources_, "bob", false))["workers"][0]["state"],
            "cordoned");
}

TEST_F(DashboardTest, AJobShowsItsLatestTaskMetricsAndTheirBest) {
  const nlohmann::json before = nlohmann::json::parse(DashboardJson(sources_, "alice", false));
  EXPECT_EQ(before["jobs"][0]["eval_metrics"], nlohmann::json::object());
  EXPECT_EQ(before["jobs"][0]["eval_summary"], nlohmann::json::array());
  auto evaluate = [&](int64_t step, double accuracy) {
    v1::ProgressReport report;
    report.mutable_ref()->set_job_id(alice_job_);
    report.mutable_ref()->set_attempt(1);
    report.set_worker_id("w1");
    report.mutable_progress()->set_step(step + 1);
    report.mutable_progress()->set_eval_step(step);
    report.mutable_progress()->set_eval_loss(std::nan(""));
    (*report.mutable_progress()->mutable_eval_metrics())["accuracy"] = accuracy;
    absl::StatusOr<v1::ReportAck> ack = manager_->OnProgress(report);
    ASSERT_TRUE(ack.ok()) << ack.status();
    EXPECT_FALSE(ack->stale());
  };
  evaluate(10, 0.75);
  evaluate(20, 0.5);
  const nlohmann::json job =
      nlohmann::json::parse(DashboardJson(sources_, "alice", false))["jobs"][0];
  EXPECT_EQ(job["eval_step"], 20);
  EXPECT_EQ(job["eval_metrics"], nlohmann::json({{"accuracy", 0.5}}));
  EXPECT_EQ(job["eval_loss"], nullptr);
  ASSERT_EQ(job["eval_summary"].size(), 1u);
  EXPECT_EQ(job["eval_summary"][0], nlohmann::json({{"name", "accuracy"},
                                                    {"latest", 0.5},
                                                    {"latest_step", 20},
                                                    {"best", 0.75},
                                                    {"best_step", 10}}));
}

TEST_F(DashboardTest, PagesNeedATokenForDataAndComeFromTheBinary) {
  OperatorEndpoint::Options options;
  options.listen = "127.0.0.1:0";
  options.pages = DashboardPages(sources_);
  auto endpoint = OperatorEndpoint::Start(options);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  httplib::Client client("127.0.0.1", (*endpoint)->port());

  auto none = client.Get("/api/v1/dashboard");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_THAT(none->body, Not(HasSubstr(alice_job_)));
  auto unknown = client.Get("/api/v1/dashboard", {{"Authorization", "Bearer nope"}});
  EXPECT_EQ(unknown->status, 401);
  auto bob = client.Get("/api/v1/dashboard", {{"Authorization", "Bearer tb"}});
  ASSERT_EQ(bob->status, 200);
  EXPECT_EQ(bob->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(JobIds(nlohmann::json::parse(bob->body)), std::vector<std::string>{bob_job_});
  EXPECT_THAT(bob->body, Not(HasSubstr(alice_job_)));
  auto root = client.Get("/api/v1/dashboard", {{"Authorization", "Bearer tr"}});
  EXPECT_EQ(JobIds(nlohmann::json::parse(root->body)).size(), 2u);

  auto page = client.Get("/");
  ASSERT_EQ(page->status, 200);
  EXPECT_THAT(page->get_header_value("Content-Type"), HasSubstr("text/html"));
  EXPECT_THAT(page->body, HasSubstr("<script src=\"/dashboard.js\" defer></script>"));
  EXPECT_THAT(page->body, Not(HasSubstr("http://")));
  EXPECT_THAT(page->body, Not(HasSubstr("https://")));
  EXPECT_EQ(page->get_header_value("Content-Security-Policy"),
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
  auto script = client.Get("/dashboard.js");
  ASSERT_EQ(script->status, 200);
  EXPECT_THAT(script->body, HasSubstr("/api/v1/dashboard"));
  EXPECT_THAT(script->body, Not(HasSubstr("innerHTML")));  // Values are written as text only.
  EXPECT_EQ(client.Get("/dashboard.css")->status, 200);
  EXPECT_EQ(client.Get("/nothing-here")->status, 404);
}

}  // namespace
}  // namespace strata
