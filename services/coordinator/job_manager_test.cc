// JobManager over a real SQLite JobStore and WorkerRegistry with a test clock: priority/FIFO
// order with gang fit and exact jobs_ahead, field-level spec errors that store nothing, cancel
// and kill from every state, group restarts after a failed rank or a lost worker (stale
// attempts ignored, ERROR after max_restarts), owner isolation, recovery of running jobs by a
// new coordinator over the same store, cordon and drain (checkpoint first, no restart used,
// cordons kept across a coordinator restart), evaluation metrics (latest and best, kept through
// restarts, on /metrics), and the dashboard's view of jobs.
#include "services/coordinator/job_manager.h"

#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

class JobManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::system(("rm -rf " + dir_).c_str());
    OpenCoordinator();
  }

  // A (new) coordinator over the same store and the same clock.
  void OpenCoordinator(std::function<UserQuota(const std::string&)> quota = nullptr) {
    manager_.reset();
    registry_.reset();
    store_.reset();
    store_ = *JobStore::Open(dir_);
    WorkerRegistry::Options ro;
    ro.heartbeat_interval = absl::Seconds(1);
    ro.heartbeat_timeout = absl::Seconds(5);
    ro.clock = [this] { return now_; };
    registry_ = *WorkerRegistry::Create(ro);
    JobManager::Options mo;
    mo.store = store_.get();
    mo.registry = registry_.get();
    mo.adopt_timeout = absl::Seconds(20);
    mo.data_roots = {"/data"};
    mo.quota = std::move(quota);
    mo.max_list_bytes = 1000;
    mo.clock = [this] { return now_; };
    manager_ = *JobManager::Create(mo);
  }

  void AddWorker(const std::string& name, int cores) {
    v1::RegisterWorkerRequest r;
    r.set_name(name);
    r.mutable_capacity()->set_cores(cores);
    r.mutable_capacity()->set_memory_bytes(int64_t{8} << 30);
    ASSERT_TRUE(registry_->Register(r).ok());
  }

  void Beat(const std::string& name, const std::vector<v1::RunningRank>& running = {}) {
    v1::HeartbeatRequest h;
    h.set_worker_id(name);
    for (const auto& r : running) *h.add_running() = r;
    ASSERT_TRUE(registry_->Heartbeat(h).ok());
    manager_->OnHeartbeat(name, running);
  }

  static v1::JobSpec Spec(const std::string& name, int priority, int cores) {
    v1::JobSpec s;
    s.set_name(name);
    s.set_priority(priority);
    s.mutable_model()->set_config_json("{}");
    s.mutable_data()->add_train_paths("/data/train.txt");
    s.mutable_data()->set_batch_size(2);
    s.mutable_data()->set_seq_len(8);
    s.mutable_optimizer()->mutable_zeroth_order()->set_lr(1e-4);
    s.mutable_training()->set_max_steps(100);
    s.mutable_resources()->set_cores_per_rank(cores);
    return s;
  }

  v1::Job Submit(const v1::JobSpec& spec, const std::string& owner = "alice") {
    absl::StatusOr<v1::Job> job = manager_->Submit(spec, "", owner);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }

  v1::JobState State(const std::string& id) { return manager_->Get(id, "")->state(); }

  // Start orders waiting for `worker`, by job id.
  std::map<std::string, v1::Assignment> Orders(const std::string& worker) {
    std::map<std::string, v1::Assignment> out;
    // No stream was opened for `worker`: its generation is 0.
    absl::StatusOr<std::vector<v1::Assignment>> taken =
        manager_->TakeAssignments(worker, 0, absl::ZeroDuration());
    EXPECT_TRUE(taken.ok()) << taken.status();
    for (v1::Assignment& a : *taken) {
      const std::string id = a.has_start() ? a.start().ref().job_id() : a.stop().ref().job_id();
      out[id] = std::move(a);
    }
    return out;
  }

  v1::RankRef Ref(const v1::Job& job, int attempt) {
    v1::RankRef ref;
    ref.set_job_id(job.id());
    ref.set_attempt(attempt);
    ref.set_rank(0);
    return ref;
  }

  void Exit(const v1::Job& job, int attempt, bool completed, const std::string& worker) {
    v1::RankExit e;
    *e.mutable_ref() = Ref(job, attempt);
    e.set_worker_id(worker);
    e.set_completed(completed);
    e.set_exit_code(completed ? 0 : 1);
    manager_->OnRankExit(e).IgnoreError();
  }

  void Progress(const v1::Job& job, int attempt, int64_t step) {
    v1::ProgressReport p;
    *p.mutable_ref() = Ref(job, attempt);
    p.mutable_progress()->set_step(step);
    p.mutable_progress()->set_loss(2.5);
    p.set_worker_id(manager_->Get(job.id(), "")->placements(0).worker_id());
    manager_->OnProgress(p).IgnoreError();
  }

  // Rank 0's progress at `step` carrying its latest evaluation (at `eval_step`), as a worker
  // forwards it; a NaN `eval_loss` and no `metrics`: no evaluation in this attempt yet.
  void Evaluated(const v1::Job& job, int attempt, int64_t step, int64_t eval_step,
                 double eval_loss, const std::map<std::string, double>& metrics) {
    v1::ProgressReport p;
    *p.mutable_ref() = Ref(job, attempt);
    p.mutable_progress()->set_step(step);
    p.mutable_progress()->set_loss(2.5);
    p.mutable_progress()->set_eval_step(eval_step);
    p.mutable_progress()->set_eval_loss(eval_loss);
    for (const auto& [name, value] : metrics) {
      (*p.mutable_progress()->mutable_eval_metrics())[name] = value;
    }
    p.set_worker_id(manager_->Get(job.id(), "")->placements(0).worker_id());
    ASSERT_TRUE(manager_->OnProgress(p).ok());
  }

  // Job.eval_metrics as "name latest@step best@step" lines.
  static std::string Summaries(const v1::Job& job) {
    std::string out;
    for (const v1::EvalMetricSummary& s : job.eval_metrics()) {
      absl::StrAppend(&out, s.name(), " ", s.latest(), "@", s.latest_step(), " ", s.best(), "@",
                      s.best_step(), "\n");
    }
    return out;
  }

  std::string dir_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<WorkerRegistry> registry_;
  std::unique_ptr<JobManager> manager_;
};

TEST_F(JobManagerTest, PriorityThenFifoWithGangFitAndExactJobsAhead) {
  const v1::Job a = Submit(Spec("a", 50, 3));
  const v1::Job b = Submit(Spec("b", 10, 2));
  const v1::Job c = Submit(Spec("c", 10, 1));
  const v1::Job d = Submit(Spec("d", 60, 1));
  manager_->Tick();  // No workers yet.
  EXPECT_EQ(manager_->Get(d.id(), "")->jobs_ahead(), 3);
  EXPECT_THAT(manager_->Get(b.id(), "")->message(), HasSubstr("waiting for workers"));
  AddWorker("w1", 4);
  manager_->Tick();
  // b and c (priority 10, FIFO) start; a (50) needs 3 of the 1 left and blocks d behind it.
  EXPECT_EQ(State(b.id()), v1::JOB_STATE_STARTING);
  EXPECT_EQ(State(c.id()), v1::JOB_STATE_STARTING);
  EXPECT_EQ(State(a.id()), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(manager_->Get(a.id(), "")->jobs_ahead(), 0);
  EXPECT_EQ(State(d.id()), v1::JOB_STATE_QUEUED);  // No backfill.
  EXPECT_EQ(manager_->Get(d.id(), "")->jobs_ahead(), 1);
  auto orders = Orders("w1");
  ASSERT_EQ(orders.size(), 2u);
  EXPECT_EQ(orders[b.id()].start().ref().attempt(), 1);
  EXPECT_EQ(orders[b.id()].start().spec().name(), "b");
  Progress(b, 1, 10);
  EXPECT_EQ(State(b.id()), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(manager_->Get(b.id(), "")->progress().step(), 10);
  Exit(b, 1, /*completed=*/true, "w1");
  EXPECT_EQ(State(b.id()), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(State(a.id()), v1::JOB_STATE_STARTING);  // 3 cores free now.
  EXPECT_EQ(State(d.id()), v1::JOB_STATE_QUEUED);    // 0 left.
}

TEST_F(JobManagerTest, BadSpecsAreRejectedByFieldAndStoreNothing) {
  v1::JobSpec spec = Spec("x", 0, 1);
  spec.mutable_data()->set_batch_size(0);
  absl::StatusOr<v1::Job> job = manager_->Submit(spec, "", "alice");
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(job.status().message(), HasSubstr("spec.data.batch_size"));
  spec = Spec("x", 100, 1);
  EXPECT_THAT(manager_->Submit(spec, "", "alice").status().message(), HasSubstr("spec.priority"));
  spec = Spec("x", 1, 1);
  spec.clear_optimizer();
  EXPECT_THAT(manager_->Submit(spec, "", "alice").status().message(), HasSubstr("spec.optimizer"));
  spec = Spec("x", 1, 1);
  spec.mutable_zero()->set_stage(4);
  EXPECT_THAT(manager_->Submit(spec, "", "alice").status().message(), HasSubstr("spec.zero.stage"));
  spec.mutable_optimizer()->mutable_adamw()->set_lr(1e-3);
  spec.mutable_zero()->set_stage(2);
  spec.mutable_zero()->set_compute_dtype(v1::DTYPE_BF16);
  EXPECT_THAT(manager_->Submit(spec, "", "alice").status().message(),
              HasSubstr("spec.zero.compute_dtype"));
  // A field the job would not use is refused, not ignored; so is an undeclared enum number.
  spec = Spec("x", 1, 1);
  spec.mutable_offload()->set_queue_depth(64);
  EXPECT_THAT(manager_->Submit(spec, "", "alice").status().message(),
              HasSubstr("spec.offload.queue_depth: not supported yet"));
  spec = Spec("x", 1, 1);
  spec.mutable_data()->set_format(static_cast<v1::DataFormat>(77));
  EXPECT_THAT(manager_->Submit(spec, "", "alice").status().message(),
              HasSubstr("spec.data.format: 77"));
  EXPECT_EQ(store_->All()->size(), 0u);
  // Defaults are filled in on a good one.
  const v1::Job good = Submit(Spec("ok", 0, 1));
  EXPECT_EQ(good.spec().priority(), 42);
  EXPECT_EQ(good.spec().max_restarts(), 5);
  EXPECT_EQ(good.spec().resources().ranks(), 1);
}

TEST_F(JobManagerTest, CheckpointReportsBecomeTheJobsLatestCheckpoint) {
  AddWorker("w1", 1);
  const v1::Job job = Submit(Spec("ckpt", 0, 1));
  ASSERT_EQ(State(job.id()), v1::JOB_STATE_STARTING);
  const int attempt = manager_->Get(job.id(), "")->attempt();
  v1::CheckpointReport report;
  *report.mutable_ref() = Ref(job, attempt);
  report.set_worker_id("w1");
  report.mutable_checkpoint()->set_step(40);
  report.mutable_checkpoint()->set_path("/w/jobs/j/checkpoints/ckpt-0000000040");
  auto ack = manager_->OnCheckpoint(report);
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_FALSE(ack->stale());
  const v1::Job after = *manager_->Get(job.id(), "");
  EXPECT_EQ(after.latest_checkpoint().step(), 40);
  EXPECT_EQ(after.latest_checkpoint().path(), "/w/jobs/j/checkpoints/ckpt-0000000040");
  EXPECT_EQ(after.latest_checkpoint().worker_id(), "w1");
  // Stored: a restarted coordinator reports it too.
  OpenCoordinator();
  EXPECT_EQ(manager_->Get(job.id(), "")->latest_checkpoint().step(), 40);
  // The list keeps what the ranks keep on disk: the newest keep_last (3 by default).
  for (int step : {10, 20, 30, 40}) {
    report.mutable_checkpoint()->set_step(step);
    report.mutable_checkpoint()->set_path(absl::StrCat("/w/ckpt-", step));
    ASSERT_TRUE(manager_->OnCheckpoint(report).ok());
  }
  const v1::Job listed = *manager_->Get(job.id(), "");
  ASSERT_EQ(listed.checkpoints_size(), 3);
  EXPECT_EQ(listed.checkpoints(0).step(), 20);
  EXPECT_EQ(listed.checkpoints(2).path(), "/w/ckpt-40");
  // A step the job cannot have reached is refused and changes nothing.
  report.mutable_checkpoint()->set_step(101);
  report.mutable_checkpoint()->set_path("/elsewhere");
  EXPECT_EQ(manager_->OnCheckpoint(report).status().code(), absl::StatusCode::kInvalidArgument);
  // A report for another attempt is stale and changes nothing either.
  report.mutable_checkpoint()->set_step(50);
  *report.mutable_ref() = Ref(job, attempt + 7);
  auto stale = manager_->OnCheckpoint(report);
  ASSERT_TRUE(stale.ok());
  EXPECT_TRUE(stale->stale());
  EXPECT_EQ(manager_->Get(job.id(), "")->latest_checkpoint().path(), "/w/ckpt-40");
  EXPECT_EQ(manager_->Get(job.id(), "")->checkpoints_size(), 3);
}

TEST_F(JobManagerTest, CancelAndKillFromEveryState) {
  AddWorker("w1", 1);
  const v1::Job running = Submit(Spec("running", 10, 1));
  const v1::Job queued = Submit(Spec("queued", 20, 1));
  manager_->Tick();
  Progress(running, 1, 1);
  ASSERT_EQ(State(running.id()), v1::JOB_STATE_RUNNING);
  // Queued: canceled at once.
  EXPECT_EQ(manager_->Cancel(queued.id(), "", "alice")->state(), v1::JOB_STATE_CANCELED);
  EXPECT_EQ(manager_->Cancel(queued.id(), "", "alice").status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Running: graceful stop order, then kill escalates while stopping.
  Orders("w1");
  EXPECT_EQ(manager_->Cancel(running.id(), "", "alice")->state(), v1::JOB_STATE_STOPPING_CANCELED);
  auto orders = Orders("w1");
  ASSERT_TRUE(orders[running.id()].has_stop());
  EXPECT_TRUE(orders[running.id()].stop().graceful());
  EXPECT_EQ(manager_->Kill(running.id(), "", "alice")->state(), v1::JOB_STATE_STOPPING_KILLED);
  orders = Orders("w1");
  EXPECT_FALSE(orders[running.id()].stop().graceful());
  Exit(running, 1, false, "w1");
  EXPECT_EQ(State(running.id()), v1::JOB_STATE_CANCELED);
  // Starting (never reported): kill stops it the same way.
  const v1::Job starting = Submit(Spec("starting", 10, 1));
  ASSERT_EQ(State(starting.id()), v1::JOB_STATE_STARTING);
  EXPECT_EQ(manager_->Kill(starting.id(), "", "alice")->state(), v1::JOB_STATE_STOPPING_KILLED);
  Exit(starting, 1, false, "w1");
  EXPECT_EQ(State(starting.id()), v1::JOB_STATE_CANCELED);
  // A canceling job whose ranks never answer is killed after the grace period.
  const v1::Job stuck = Submit(Spec("stuck", 10, 1));
  ASSERT_EQ(manager_->Cancel(stuck.id(), "", "alice")->state(), v1::JOB_STATE_STOPPING_CANCELED);
  Orders("w1");
  now_ += absl::Seconds(61);
  Beat("w1");
  manager_->Tick();
  orders = Orders("w1");
  ASSERT_TRUE(orders[stuck.id()].has_stop());
  EXPECT_FALSE(orders[stuck.id()].stop().graceful());
}

TEST_F(JobManagerTest, FailedRankRestartsTheGroupUntilMaxRestarts) {
  AddWorker("w1", 2);
  v1::JobSpec spec = Spec("flaky", 10, 1);
  spec.set_max_restarts(2);
  const v1::Job job = Submit(spec);
  Progress(job, 1, 5);
  Exit(job, 1, /*completed=*/false, "w1");
  v1::Job now = *manager_->Get(job.id(), "");
  EXPECT_EQ(now.state(), v1::JOB_STATE_STARTING);  // Requeued and placed again at once.
  EXPECT_EQ(now.attempt(), 2);
  EXPECT_EQ(now.restarts(), 1);
  // Reports from the old attempt are stale and change nothing.
  v1::ProgressReport old;
  *old.mutable_ref() = Ref(job, 1);
  old.set_worker_id("w1");
  EXPECT_TRUE(manager_->OnProgress(old)->stale());
  Exit(job, 2, false, "w1");
  Exit(job, 3, false, "w1");
  now = *manager_->Get(job.id(), "");
  EXPECT_EQ(now.state(), v1::JOB_STATE_ERROR);
  EXPECT_THAT(now.message(), HasSubstr("no restarts left"));
}

TEST_F(JobManagerTest, ARestartedZoAttemptGetsTheStepLog) {
  AddWorker("w1", 1);
  const v1::Job job = Submit(Spec("zo", 10, 1));
  v1::StepLogReport report;
  *report.mutable_ref() = Ref(job, 1);
  report.set_worker_id("w1");
  for (int64_t step = 1; step <= 3; ++step) {
    v1::ZoStepRecord* r = report.add_records();
    r->set_step(step);
    r->set_seed(step * 11);
    r->add_projected_grads(0.5);
  }
  auto ack = manager_->OnStepLog(report);
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->durable_through_step(), 3);
  report.mutable_records(0)->add_projected_grads(1.0);  // Two scalars for a q = 1 job.
  EXPECT_EQ(manager_->OnStepLog(report).status().code(), absl::StatusCode::kInvalidArgument);
  Orders("w1");
  Exit(job, 1, /*completed=*/false, "w1");
  auto orders = Orders("w1");
  ASSERT_TRUE(orders[job.id()].has_start());
  EXPECT_EQ(orders[job.id()].start().ref().attempt(), 2);
  ASSERT_EQ(orders[job.id()].start().replay_size(), 3);
  EXPECT_EQ(orders[job.id()].start().replay(2).seed(), 33u);
  // The old attempt's records are stale now.
  v1::StepLogReport late;
  *late.mutable_ref() = Ref(job, 1);
  EXPECT_TRUE(manager_->OnStepLog(late)->stale());
}

TEST_F(JobManagerTest, LostWorkerRestartsItsJobElsewhere) {
  AddWorker("w1", 1);
  const v1::Job job = Submit(Spec("j", 10, 1));
  Progress(job, 1, 3);
  AddWorker("w2", 1);
  now_ += absl::Seconds(6);  // w1 and w2 silent past the timeout...
  Beat("w2");                // ...but w2 heartbeats.
  manager_->Tick();
  const v1::Job after = *manager_->Get(job.id(), "");
  EXPECT_EQ(after.state(), v1::JOB_STATE_STARTING);
  EXPECT_EQ(after.attempt(), 2);
  EXPECT_EQ(after.placements(0).worker_id(), "w2");
  v1::JobLogsRequest logs;
  logs.set_job_id(job.id());
  v1::JobState state;
  auto lines = manager_->Logs(logs, "", &state);
  ASSERT_TRUE(lines.ok());
  EXPECT_THAT(lines->back().text(), HasSubstr("QUEUED -> STARTING"));
  bool saw_lost = false;
  for (const v1::LogLine& line : *lines)
    saw_lost |= line.text().find("w1 lost") != std::string::npos;
  EXPECT_TRUE(saw_lost);
}

TEST_F(JobManagerTest, CordonedWorkersTakeNoNewRanksAndDrainMovesJobsAfterACheckpoint) {
  AddWorker("w1", 1);
  AddWorker("w2", 1);
  EXPECT_EQ(manager_->SetCordoned("nobody", true).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(manager_->SetCordoned("w1", true).ok());
  const v1::Job job = Submit(Spec("j", 10, 1));
  EXPECT_EQ(manager_->Get(job.id(), "")->placements(0).worker_id(), "w2");  // Not w1.
  // Uncordon w1 and drain w2: the job stops gracefully, then starts on w1.
  ASSERT_TRUE(manager_->SetCordoned("w1", false).ok());
  Orders("w2");
  Progress(job, 1, 7);
  absl::StatusOr<std::vector<std::string>> moved = manager_->Drain("w2", "operator root");
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(*moved, std::vector<std::string>{job.id()});
  EXPECT_EQ(State(job.id()), v1::JOB_STATE_RESTARTING);
  std::map<std::string, v1::Assignment> stop = Orders("w2");
  ASSERT_TRUE(stop[job.id()].has_stop());
  EXPECT_TRUE(stop[job.id()].stop().graceful());  // The rank checkpoints before it exits.
  EXPECT_EQ(manager_->Cordoned(), std::set<std::string>{"w2"});
  // Its checkpoint is accepted while it drains, and the job waits for the rank's exit.
  v1::CheckpointReport checkpoint;
  *checkpoint.mutable_ref() = Ref(job, 1);
  checkpoint.set_worker_id("w2");
  checkpoint.mutable_checkpoint()->set_step(7);
  checkpoint.mutable_checkpoint()->set_path("/ckpt/7");
  ASSERT_TRUE(manager_->OnCheckpoint(checkpoint).ok());
  manager_->Tick();
  EXPECT_EQ(State(job.id()), v1::JOB_STATE_RESTARTING);
  Exit(job, 1, /*completed=*/false, "w2");
  const v1::Job after = *manager_->Get(job.id(), "");
  EXPECT_EQ(after.state(), v1::JOB_STATE_STARTING);
  EXPECT_EQ(after.attempt(), 2);
  EXPECT_EQ(after.restarts(), 0);  // A drain is not a failure.
  EXPECT_EQ(after.placements(0).worker_id(), "w1");
  EXPECT_EQ(after.latest_checkpoint().step(), 7);
  // Cordons are kept by a restarted coordinator; an uncordoned w2 takes work again.
  OpenCoordinator();
  AddWorker("w1", 1);
  AddWorker("w2", 1);
  EXPECT_EQ(manager_->Cordoned(), std::set<std::string>{"w2"});
  const v1::Job second = Submit(Spec("k", 10, 1));
  EXPECT_EQ(State(second.id()), v1::JOB_STATE_QUEUED);  // w1 is busy, w2 cordoned.
  ASSERT_TRUE(manager_->SetCordoned("w2", false).ok());
  EXPECT_EQ(manager_->Get(second.id(), "")->placements(0).worker_id(), "w2");
}

TEST_F(JobManagerTest, ADrainThatTimesOutKillsTheRanksAndTheJobStillMoves) {
  AddWorker("w1", 1);
  AddWorker("w2", 1);
  const v1::Job job = Submit(Spec("j", 10, 1));
  const std::string first = manager_->Get(job.id(), "")->placements(0).worker_id();
  ASSERT_TRUE(manager_->Drain(first, "operator").ok());
  Orders(first);
  now_ += absl::Seconds(61);  // Past cancel_grace: a kill follows the graceful stop.
  Beat(first);
  Beat(first == "w1" ? "w2" : "w1");
  manager_->Tick();
  std::map<std::string, v1::Assignment> kill = Orders(first);
  ASSERT_TRUE(kill[job.id()].has_stop());
  EXPECT_FALSE(kill[job.id()].stop().graceful());
  Exit(job, 1, /*completed=*/false, first);
  EXPECT_EQ(State(job.id()), v1::JOB_STATE_STARTING);
  EXPECT_NE(manager_->Get(job.id(), "")->placements(0).worker_id(), first);
}

TEST_F(JobManagerTest, TheDashboardShowsAnOwnersJobsWithTheirCurveAndEvents) {
  AddWorker("w1", 4);
  const v1::Job mine = Submit(Spec("mine", 10, 1), "alice");
  const v1::Job theirs = Submit(Spec("theirs", 10, 1), "bob");
  for (int step = 1; step <= 3000; ++step) Progress(mine, 1, step);
  std::vector<JobManager::JobView> alice = manager_->Dashboard("alice", 5);
  ASSERT_EQ(alice.size(), 1u);
  EXPECT_EQ(alice[0].job.id(), mine.id());
  EXPECT_EQ(alice[0].owner, "alice");
  // The whole run at a coarser step: first point kept, at most kMaxCurvePoints, newest last.
  ASSERT_LE(alice[0].curve.size(), JobManager::kMaxCurvePoints);
  EXPECT_GE(alice[0].curve.size(), JobManager::kMaxCurvePoints / 2);
  EXPECT_EQ(alice[0].curve.front().step, 1);
  EXPECT_EQ(alice[0].curve.back().step, 3000);
  EXPECT_EQ(alice[0].curve.back().loss, 2.5);
  ASSERT_FALSE(alice[0].events.empty());
  EXPECT_THAT(alice[0].events.back().text(), HasSubstr("STARTING -> RUNNING"));
  EXPECT_EQ(manager_->Dashboard("", 5).size(), 2u);  // An operator sees both.
  // Finished jobs: only the newest `recent_finished`.
  ASSERT_TRUE(manager_->Kill(theirs.id(), "", "").ok());
  Exit(theirs, 1, false, "w1");
  EXPECT_EQ(manager_->Dashboard("", 0).size(), 1u);
  EXPECT_EQ(manager_->Dashboard("bob", 1).size(), 1u);
}

TEST_F(JobManagerTest, OwnersSeeOnlyTheirJobs) {
  const v1::Job mine = Submit(Spec("mine", 10, 1), "alice");
  const v1::Job theirs = Submit(Spec("theirs", 10, 1), "bob");
  EXPECT_EQ(manager_->Get(theirs.id(), "alice").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(manager_->Cancel(theirs.id(), "", "alice").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(State(theirs.id()), v1::JOB_STATE_QUEUED);  // Unchanged.
  v1::ListJobsRequest all;
  auto listed = manager_->List(all, "alice");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->jobs_size(), 1);
  EXPECT_EQ(listed->jobs(0).id(), mine.id());
  EXPECT_EQ(manager_->List(all, "")->jobs_size(), 2);
}

TEST_F(JobManagerTest, ARestartedCoordinatorRecoversAndReadoptsJobs) {
  AddWorker("w1", 2);
  const v1::Job adopted = Submit(Spec("adopted", 10, 1));
  const v1::Job orphan = Submit(Spec("orphan", 10, 1));
  const v1::Job queued = Submit(Spec("queued", 10, 2));  // Waits for both cores.
  Progress(adopted, 1, 7);
  Progress(orphan, 1, 7);
  ASSERT_EQ(State(queued.id()), v1::JOB_STATE_QUEUED);

  OpenCoordinator();  // Same store, fresh process state; w1 has to register again.
  EXPECT_EQ(State(adopted.id()), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(State(queued.id()), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(manager_->Get(adopted.id(), "")->progress().step(), 7);
  AddWorker("w1", 2);
  v1::RunningRank r;
  *r.mutable_ref() = Ref(adopted, 1);
  Beat("w1", {r});  // w1 still runs `adopted`, not `orphan`.
  now_ += absl::Seconds(3);
  Beat("w1", {r});
  manager_->Tick();
  EXPECT_EQ(State(adopted.id()), v1::JOB_STATE_RUNNING);
  now_ += absl::Seconds(18);  // Past the adopt timeout.
  Beat("w1", {r});
  manager_->Tick();
  EXPECT_EQ(State(adopted.id()), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(manager_->Get(adopted.id(), "")->attempt(), 1);
  const v1::Job o = *manager_->Get(orphan.id(), "");
  EXPECT_EQ(o.attempt(), 2);  // Restarted.
  EXPECT_EQ(o.restarts(), 1);
}

// A rank's reports are accepted only from the worker it was placed on, for the current attempt:
// another worker (a rogue one holding its own valid token) can neither move the job's progress,
// nor end it, nor write its step log.
TEST_F(JobManagerTest, ReportsAreAcceptedOnlyFromTheWorkerTheRankIsPlacedOn) {
  AddWorker("w1", 2);
  AddWorker("w2", 2);
  const v1::Job job = Submit(Spec("victim", 10, 2));
  manager_->Tick();
  const std::string placed = manager_->Get(job.id(), "")->placements(0).worker_id();
  const std::string rogue = placed == "w1" ? "w2" : "w1";
  Progress(job, 1, 5);
  const v1::Job before = *manager_->Get(job.id(), "");
  v1::ProgressReport forged;
  *forged.mutable_ref() = Ref(job, 1);
  forged.set_worker_id(rogue);
  forged.mutable_progress()->set_step(99);
  EXPECT_EQ(manager_->OnProgress(forged).status().code(), absl::StatusCode::kPermissionDenied);
  v1::RankExit exit;
  *exit.mutable_ref() = Ref(job, 1);
  exit.set_worker_id(rogue);
  exit.set_completed(true);
  EXPECT_EQ(manager_->OnRankExit(exit).status().code(), absl::StatusCode::kPermissionDenied);
  v1::StepLogReport steps;
  *steps.mutable_ref() = Ref(job, 1);
  steps.set_worker_id(rogue);
  v1::ZoStepRecord* record = steps.add_records();
  record->set_step(1);
  record->add_projected_grads(0.5);
  EXPECT_EQ(manager_->OnStepLog(steps).status().code(), absl::StatusCode::kPermissionDenied);
  const v1::Job after = *manager_->Get(job.id(), "");
  EXPECT_EQ(after.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(after.progress().step(), before.progress().step());
  EXPECT_TRUE(store_->Steps(job.id())->empty());
  // The rendezvous keys of the attempt are the placed worker's only.
  EXPECT_TRUE(manager_->PlacedInAttempt(job.id() + "/1", placed));
  EXPECT_FALSE(manager_->PlacedInAttempt(job.id() + "/1", rogue));
  EXPECT_FALSE(manager_->PlacedInAttempt(job.id() + "/2", placed));
  EXPECT_FALSE(manager_->PlacedInAttempt(job.id() + "/01", placed));  // Not its spelling.
  EXPECT_FALSE(manager_->PlacedInAttempt("j-nope/1", placed));
}

// A step record is written once: an identical resend is fine, a different one for the same
// step is refused (so nothing can pre-write the records a restarted attempt replays), and steps
// past training.max_steps are refused.
TEST_F(JobManagerTest, ConflictingStepRecordsAreRefused) {
  AddWorker("w1", 2);
  const v1::Job job = Submit(Spec("zo", 10, 1));
  manager_->Tick();
  v1::StepLogReport steps;
  *steps.mutable_ref() = Ref(job, 1);
  steps.set_worker_id("w1");
  v1::ZoStepRecord* record = steps.add_records();
  record->set_step(1);
  record->set_seed(7);
  record->add_projected_grads(0.5);
  ASSERT_TRUE(manager_->OnStepLog(steps).ok());
  EXPECT_TRUE(manager_->OnStepLog(steps).ok());  // Resent as is.
  steps.mutable_records(0)->set_loss(2.5);       // Recomputed: only the (progress) loss differs.
  EXPECT_TRUE(manager_->OnStepLog(steps).ok());
  steps.mutable_records(0)->set_projected_grads(0, -3.0);
  absl::StatusOr<v1::StepLogAck> conflict = manager_->OnStepLog(steps);
  EXPECT_EQ(conflict.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(conflict.status().message(), HasSubstr("step 1"));
  ASSERT_EQ(store_->Steps(job.id())->size(), 1u);
  EXPECT_EQ(store_->Steps(job.id())->at(0).projected_grads(0), 0.5);
  steps.mutable_records(0)->set_step(101);
  EXPECT_EQ(manager_->OnStepLog(steps).status().code(), absl::StatusCode::kInvalidArgument);
}

// A start order taken by a stream that then broke is sent again on the worker's next stream,
// and a newer stream replaces the older one.
TEST_F(JobManagerTest, OrdersSurviveAStreamReconnectAndOneStreamLivesPerWorker) {
  AddWorker("w1", 2);
  const int64_t first = manager_->OpenAssignments("w1");
  const v1::Job job = Submit(Spec("j", 10, 1));
  manager_->Tick();
  absl::StatusOr<std::vector<v1::Assignment>> taken =
      manager_->TakeAssignments("w1", first, absl::ZeroDuration());
  ASSERT_TRUE(taken.ok());
  ASSERT_EQ(taken->size(), 1u);  // ... and lost on the wire.
  const int64_t second = manager_->OpenAssignments("w1");
  EXPECT_EQ(manager_->TakeAssignments("w1", first, absl::ZeroDuration()).status().code(),
            absl::StatusCode::kAborted);
  taken = manager_->TakeAssignments("w1", second, absl::ZeroDuration());
  ASSERT_TRUE(taken.ok());
  ASSERT_EQ(taken->size(), 1u);
  EXPECT_EQ(taken->at(0).start().ref().job_id(), job.id());
  EXPECT_EQ(taken->at(0).start().owner(), "alice");
  // Once the rank reports, a new stream does not start it again.
  Progress(job, 1, 1);
  const int64_t third = manager_->OpenAssignments("w1");
  EXPECT_TRUE(manager_->TakeAssignments("w1", third, absl::ZeroDuration())->empty());
}

// A job no live worker could ever fit waits as unschedulable, with the reason, and blocks
// nobody; so does one that stops fitting (its worker left).
TEST_F(JobManagerTest, AJobThatCanNeverFitBlocksNobody) {
  AddWorker("w1", 4);
  v1::JobSpec huge = Spec("huge", 1, 1);
  huge.mutable_resources()->set_cores_per_rank(4096);
  const v1::Job waiting = Submit(huge);
  const v1::Job small = Submit(Spec("small", 50, 1));
  manager_->Tick();
  EXPECT_EQ(State(waiting.id()), v1::JOB_STATE_QUEUED);
  EXPECT_THAT(manager_->Get(waiting.id(), "")->message(),
              HasSubstr("unschedulable: 1 rank(s) of 4096 core(s)"));
  EXPECT_THAT(manager_->Get(waiting.id(), "")->message(),
              HasSubstr("fit on none of the 1 live worker(s)"));
  EXPECT_EQ(State(small.id()), v1::JOB_STATE_STARTING);
  // A job that fit when it started, stranded when its worker is lost.
  AddWorker("big", 64);
  v1::JobSpec wide = Spec("wide", 1, 32);
  const v1::Job stranded = Submit(wide);
  manager_->Tick();
  ASSERT_EQ(State(stranded.id()), v1::JOB_STATE_STARTING);
  Progress(stranded, 1, 1);
  Exit(stranded, 1, /*completed=*/false, "big");  // Restarts: queued again.
  now_ += absl::Seconds(6);                       // "big" misses its heartbeats: lost.
  Beat("w1");
  const v1::Job behind = Submit(Spec("behind", 50, 1));
  manager_->Tick();
  EXPECT_EQ(State(stranded.id()), v1::JOB_STATE_QUEUED);
  EXPECT_THAT(manager_->Get(stranded.id(), "")->message(), HasSubstr("unschedulable"));
  EXPECT_EQ(State(behind.id()), v1::JOB_STATE_STARTING);  // Not held up.
}

// A kill ends the job even when the worker never acknowledges it (an order it never got).
TEST_F(JobManagerTest, KillEndsTheJobWithoutTheWorkersAcknowledgement) {
  AddWorker("w1", 2);
  const v1::Job job = Submit(Spec("deaf", 10, 1));
  manager_->Tick();
  Progress(job, 1, 3);
  ASSERT_EQ(manager_->Kill(job.id(), "", "alice")->state(), v1::JOB_STATE_STOPPING_KILLED);
  now_ += absl::Seconds(30);
  Beat("w1", {});
  manager_->Tick();
  EXPECT_EQ(State(job.id()), v1::JOB_STATE_STOPPING_KILLED);
  now_ += absl::Seconds(31);
  Beat("w1", {});
  manager_->Tick();
  EXPECT_EQ(State(job.id()), v1::JOB_STATE_CANCELED);
  // A coordinator restart does not wedge a STOPPING_KILLED job either.
  const v1::Job second = Submit(Spec("deaf2", 10, 1));
  manager_->Tick();
  Progress(second, 1, 1);
  manager_->Kill(second.id(), "", "alice").IgnoreError();
  OpenCoordinator();
  now_ += absl::Seconds(61);
  manager_->Tick();
  EXPECT_EQ(State(second.id()), v1::JOB_STATE_CANCELED);
}

TEST_F(JobManagerTest, QuotasBoundUnfinishedJobsAndCores) {
  OpenCoordinator([](const std::string& owner) {
    UserQuota q;
    if (owner == "alice") {
      q.max_jobs = 2;
      q.max_cores = 3;
    }
    return q;
  });
  Submit(Spec("a1", 10, 2));
  absl::StatusOr<v1::Job> cores = manager_->Submit(Spec("a2", 10, 2), "", "alice");
  EXPECT_EQ(cores.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(cores.status().message(), HasSubstr("max_cores"));
  const v1::Job a2 = *manager_->Submit(Spec("a2", 10, 1), "retry-me", "alice");
  // A retried submission (same request id) gets its job back, quota or not.
  EXPECT_EQ(manager_->Submit(Spec("a2", 10, 1), "retry-me", "alice")->id(), a2.id());
  absl::StatusOr<v1::Job> jobs = manager_->Submit(Spec("a3", 10, 1), "", "alice");
  EXPECT_THAT(jobs.status().message(), HasSubstr("2 unfinished job(s) (max_jobs)"));
  EXPECT_TRUE(manager_->Submit(Spec("b1", 10, 4), "", "bob").ok());  // No quota.
  ASSERT_TRUE(manager_->Cancel(a2.id(), "", "alice").ok());
  EXPECT_TRUE(manager_->Submit(Spec("a3", 10, 1), "", "alice").ok());
}

// Evaluations with task metrics: the job's progress carries the latest one (kept through
// reports without one), Job.eval_metrics the latest and best of each metric (loss lowest, task
// metrics highest), /metrics the latest; a group restart and a coordinator restart keep them.
TEST_F(JobManagerTest, EvaluationMetricsKeepLatestAndBestThroughRestarts) {
  AddWorker("w1", 1);
  v1::JobSpec spec = Spec("task", 10, 1);
  spec.set_max_restarts(2);
  const v1::Job job = Submit(spec);
  const double none = std::nan("");
  Evaluated(job, 1, 5, 0, none, {});
  EXPECT_TRUE(manager_->Get(job.id(), "")->eval_metrics().empty());
  Evaluated(job, 1, 21, 20, 0.9, {{"accuracy", 0.625}, {"f1", 0.5}});
  Evaluated(job, 1, 40, 40, 0.75, {{"accuracy", 0.875}, {"f1", 0.25}});
  Evaluated(job, 1, 45, 40, 0.75, {{"accuracy", 0.875}, {"f1", 0.25}});  // Reported again.
  v1::Job got = *manager_->Get(job.id(), "");
  EXPECT_EQ(got.progress().step(), 45);
  EXPECT_EQ(got.progress().eval_step(), 40);
  EXPECT_EQ(got.progress().eval_loss(), 0.75);
  EXPECT_THAT(got.progress().eval_metrics(),
              ::testing::UnorderedElementsAre(::testing::Pair("accuracy", 0.875),
                                              ::testing::Pair("f1", 0.25)));
  EXPECT_EQ(Summaries(got),
            "accuracy 0.875@40 0.875@40\n"
            "f1 0.25@40 0.5@20\n"
            "loss 0.75@40 0.75@40\n");
  MetricsWriter metrics;
  manager_->CollectMetrics(&metrics);
  EXPECT_THAT(metrics.text(), HasSubstr("# TYPE strata_job_eval_metric gauge\n"));
  EXPECT_THAT(metrics.text(),
              HasSubstr(absl::StrCat("strata_job_eval_metric{job_id=\"", job.id(),
                                     "\",metric=\"accuracy\"} 0.875\n")));
  EXPECT_THAT(metrics.text(), HasSubstr(absl::StrCat("strata_job_eval_metric{job_id=\"", job.id(),
                                                     "\",metric=\"f1\"} 0.25\n")));

  // The rank fails; attempt 2 resumes from an older checkpoint. Before it evaluates, the job
  // shows attempt 1's latest evaluation; its own evaluation then becomes the latest, and the
  // best stays attempt 1's where that was better.
  Exit(job, 1, /*completed=*/false, "w1");
  ASSERT_EQ(manager_->Get(job.id(), "")->attempt(), 2);
  Evaluated(job, 2, 31, 0, none, {});
  got = *manager_->Get(job.id(), "");
  EXPECT_EQ(got.progress().step(), 31);
  EXPECT_EQ(got.progress().eval_step(), 40);
  EXPECT_EQ(got.progress().eval_loss(), 0.75);
  EXPECT_EQ(got.progress().eval_metrics().at("accuracy"), 0.875);
  Evaluated(job, 2, 40, 40, 0.6, {{"accuracy", 0.75}, {"f1", 0.375}});
  const std::string after_restart =
      "accuracy 0.75@40 0.875@40\n"
      "f1 0.375@40 0.5@20\n"
      "loss 0.6@40 0.6@40\n";
  EXPECT_EQ(Summaries(*manager_->Get(job.id(), "")), after_restart);

  // A new coordinator over the same store: the same summaries and latest evaluation.
  OpenCoordinator();
  got = *manager_->Get(job.id(), "");
  EXPECT_EQ(Summaries(got), after_restart);
  EXPECT_EQ(got.progress().eval_step(), 40);
  EXPECT_THAT(got.progress().eval_metrics(),
              ::testing::UnorderedElementsAre(::testing::Pair("accuracy", 0.75),
                                              ::testing::Pair("f1", 0.375)));
}

// Pages end at the byte bound as well as the count, and following the tokens lists every job.
TEST_F(JobManagerTest, ListPagesByBytes) {
  for (int i = 0; i < 5; ++i) {
    v1::JobSpec spec = Spec(absl::StrCat("big", i), 10, 1);
    (*spec.mutable_labels())["note"] = std::string(200, 'x');
    Submit(spec);
  }
  v1::ListJobsRequest request;
  request.set_page_size(1000);
  std::set<std::string> seen;
  int pages = 0;
  do {
    absl::StatusOr<v1::ListJobsResponse> page = manager_->List(request, "alice");
    ASSERT_TRUE(page.ok());
    ++pages;
    size_t bytes = 0;
    for (const v1::Job& job : page->jobs()) {
      seen.insert(job.id());
      bytes += job.ByteSizeLong();
    }
    EXPECT_TRUE(page->jobs_size() == 1 || bytes <= 1000) << bytes;
    request.set_page_token(page->next_page_token());
  } while (!request.page_token().empty());
  EXPECT_EQ(seen.size(), 5u);
  EXPECT_GE(pages, 3);
}

}  // namespace
}  // namespace strata
