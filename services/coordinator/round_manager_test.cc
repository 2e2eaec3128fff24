// Federated rounds over a real SQLite JobStore and JobManager with a test clock: sampling and
// round opening by the spec's minimums, the aggregate (sample-weighted float64 mean per seed, in
// seed order), every push outcome (accepted, duplicate, late, not sampled, rejected for
// non-finite / clipped / bad or repeated seeds / oversized), sessions bound to their client,
// enrollment tokens, a round timing out below min_replies (nothing applied), the job completing
// after its rounds, a new coordinator reading the history back, and the /metrics series (rounds
// by outcome, per-job gauges while the rounds go on).
#include "services/coordinator/round_manager.h"

#include <cmath>
#include <cstdlib>
#include <functional>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/coordinator/worker_registry.h"

namespace strata {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class RoundManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::system(("rm -rf " + dir_).c_str());
    Open({});
  }

  void Open(std::map<std::string, std::string> enrollment) {
    rounds_.reset();
    manager_.reset();
    registry_.reset();
    store_.reset();
    store_ = *JobStore::Open(dir_);
    WorkerRegistry::Options ro;
    ro.clock = [this] { return now_; };
    registry_ = *WorkerRegistry::Create(ro);
    JobManager::Options mo;
    mo.store = store_.get();
    mo.registry = registry_.get();
    mo.clock = [this] { return now_; };
    manager_ = *JobManager::Create(mo);
    RoundManager::Options options;
    options.store = store_.get();
    options.jobs = manager_.get();
    options.open_enrollment = enrollment.empty();
    options.enrollment = std::move(enrollment);
    options.clock = [this] { return now_; };
    rounds_ = std::make_unique<RoundManager>(options);
  }

  std::string Submit(int rounds, int min_replies, double clip = 0, bool pro = false,
                     const std::function<void(v1::JobSpec&)>& edit = nullptr) {
    v1::JobSpec s;
    s.set_name("fed");
    s.mutable_model()->set_config_json(R"({"vocab_size": 257})");
    s.mutable_data()->set_batch_size(2);
    s.mutable_data()->set_seq_len(8);
    s.mutable_optimizer()->mutable_zeroth_order()->set_lr(0.5);
    s.mutable_training()->set_seed(3);
    v1::FederatedSpec* f = s.mutable_federated();
    f->set_num_rounds(rounds);
    f->set_num_candidate_seeds(16);
    f->set_local_steps(4);
    f->set_min_available_nodes(2);
    f->set_min_replies(min_replies);
    f->set_scalar_clip(clip);
    f->set_seed_probabilities(pro);
    f->mutable_round_timeout()->set_seconds(30);
    if (edit) edit(s);
    absl::StatusOr<v1::Job> job = manager_->Submit(s, "", "");
    EXPECT_TRUE(job.ok()) << job.status();
    EXPECT_EQ(job->state(), v1::JOB_STATE_RUNNING);
    return job->id();
  }

  std::string Register(const std::string& job, const std::string& client, int64_t samples,
                       const std::string& token = "") {
    v1::RegisterClientRequest r;
    r.set_job_id(job);
    r.set_client_id(client);
    r.set_num_samples(samples);
    r.set_token(token);
    absl::StatusOr<v1::RegisterClientResponse> response = rounds_->Register(r);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->session_token() : "";
  }

  absl::StatusOr<v1::PullTaskResponse> Pull(const std::string& job, const std::string& client,
                                            const std::string& session, int64_t replayed = 0) {
    v1::PullTaskRequest r;
    r.set_job_id(job);
    r.set_client_id(client);
    r.set_replayed_round(replayed);
    return rounds_->PullTask(r, session);
  }

  v1::PushOutcome Push(const std::string& job, const std::string& client,
                       const std::string& session, int64_t round,
                       std::vector<std::pair<uint32_t, float>> results, int64_t samples = 0) {
    v1::PushResultRequest r;
    r.set_job_id(job);
    r.set_client_id(client);
    r.set_round(round);
    r.set_num_samples(samples);
    for (auto [index, g] : results) {
      r.add_seed_indices(index);
      r.add_scalars(g);
    }
    absl::StatusOr<v1::PushResultResponse> response = rounds_->PushResult(r, session);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->outcome() : v1::PUSH_OUTCOME_UNSPECIFIED;
  }

  std::string dir_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<WorkerRegistry> registry_;
  std::unique_ptr<JobManager> manager_;
  std::unique_ptr<RoundManager> rounds_;
};

TEST_F(RoundManagerTest, RoundsAggregateSampleWeightedAndEveryOutcomeIsRight) {
  const std::string job = Submit(/*rounds=*/2, /*min_replies=*/2, /*clip=*/100);
  const std::string a = Register(job, "a", 100);
  // One client online: below min_available_nodes, no round yet.
  auto pulled = Pull(job, "a", a);
  ASSERT_TRUE(pulled.ok());
  EXPECT_TRUE(pulled->has_retry_after());
  const std::string b = Register(job, "b", 300);
  pulled = Pull(job, "a", a);
  ASSERT_TRUE(pulled.ok() && pulled->has_task()) << pulled.status();
  const v1::Task task = pulled->task();
  EXPECT_EQ(task.round(), 1);
  EXPECT_EQ(task.num_candidates(), 16);
  EXPECT_EQ(task.candidate_root(), 3u);
  EXPECT_EQ(task.hyperparameters().local_steps(), 4);
  // A session is its client's only.
  EXPECT_EQ(Pull(job, "b", a).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Pull(job, "b", "made-up").status().code(), absl::StatusCode::kUnauthenticated);
  // Invalid results are rejected and do not count; the client's answer is final for the round.
  const std::string c = Register(job, "c", 1);  // Online after sampling: not in this round.
  EXPECT_EQ(Push(job, "c", c, 1, {{1, 1.0f}}), v1::PUSH_OUTCOME_NOT_SAMPLED);
  EXPECT_EQ(Push(job, "a", a, 2, {{1, 1.0f}}), v1::PUSH_OUTCOME_LATE);
  EXPECT_EQ(Push(job, "a", a, 1, {{3, 2.0f}, {1, 4.0f}}, 100), v1::PUSH_OUTCOME_ACCEPTED);
  EXPECT_EQ(Push(job, "a", a, 1, {{3, 2.0f}}), v1::PUSH_OUTCOME_DUPLICATE);
  EXPECT_EQ(Push(job, "b", b, 1, {{16, 1.0f}}), v1::PUSH_OUTCOME_REJECTED);  // Index >= K.
  // b's answer is in (rejected): with a alone the round is below min_replies = 2 and fails;
  // round 2 opens at once (three clients online).
  auto rounds = rounds_->ListRounds(job);
  ASSERT_TRUE(rounds.ok());
  ASSERT_EQ(rounds->rounds_size(), 2);
  EXPECT_EQ(rounds->rounds(0).state(), v1::ROUND_STATE_FAILED);
  EXPECT_EQ(rounds->rounds(1).state(), v1::ROUND_STATE_OPEN);
  EXPECT_EQ(rounds->rounds(1).sampled(), 3);
  EXPECT_EQ(rounds->rounds(0).replies_ok(), 1);
  EXPECT_EQ(rounds->rounds(0).replies_rejected(), 1);
  // Round 2 (the last): c is online now and sampled too; NaN and clipped scalars are rejected.
  for (const auto& [client, session] :
       std::vector<std::pair<std::string, std::string>>{{"a", a}, {"b", b}, {"c", c}}) {
    pulled = Pull(job, client, session);
    ASSERT_TRUE(pulled.ok() && pulled->has_task());
    EXPECT_EQ(pulled->task().round(), 2);
  }
  EXPECT_EQ(Push(job, "c", c, 2, {{5, NAN}}), v1::PUSH_OUTCOME_REJECTED);
  EXPECT_EQ(Push(job, "a", a, 2, {{3, 2.0f}, {1, 4.0f}}, 100), v1::PUSH_OUTCOME_ACCEPTED);
  EXPECT_EQ(Push(job, "b", b, 2, {{3, -1.0f}, {7, 0.5f}}, 300), v1::PUSH_OUTCOME_ACCEPTED);
  // Closed: per seed, sum(w * g) / sum(w) over the accepted clients, seeds ascending.
  rounds = rounds_->ListRounds(job);
  ASSERT_EQ(rounds->rounds_size(), 2);
  EXPECT_EQ(rounds->rounds(1).state(), v1::ROUND_STATE_CLOSED);
  pulled = Pull(job, "a", a);
  ASSERT_TRUE(pulled.ok());
  EXPECT_TRUE(pulled->finished());
  v1::SyncHistoryRequest sync;
  sync.set_job_id(job);
  sync.set_client_id("b");
  auto history = rounds_->SyncHistory(sync, b);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->history_size(), 1);
  const v1::HistoryEntry e = history->history(0);
  EXPECT_EQ(e.round(), 2);
  EXPECT_EQ(e.lr(), 0.5);
  EXPECT_THAT(e.seed_indices(), ElementsAre(1, 3, 7));
  EXPECT_THAT(e.scalars(),
              ElementsAre(100.0 * 4 / 400, (100.0 * 2 - 300.0) / 400, 300.0 * 0.5 / 400));
  EXPECT_EQ(manager_->Get(job, "")->state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(manager_->Get(job, "")->progress().round(), 2);
  // A new coordinator over the same store has the history (clients register again).
  Open({});
  const std::string again = Register(job, "b", 300);
  history = rounds_->SyncHistory(sync, again);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->history_size(), 1);
  EXPECT_THAT(history->history(0).scalars(), ElementsAre(e.scalars(0), e.scalars(1), e.scalars(2)));
}

TEST_F(RoundManagerTest, ARoundTimesOutWithoutEnoughRepliesAndNothingIsApplied) {
  const std::string job = Submit(/*rounds=*/3, /*min_replies=*/1);
  const std::string a = Register(job, "a", 1), b = Register(job, "b", 1);
  ASSERT_TRUE(Pull(job, "a", a)->has_task());
  ASSERT_TRUE(Pull(job, "b", b)->has_task());
  now_ += absl::Seconds(31);  // Nobody answered before the deadline.
  rounds_->Tick();
  // A straggler's late result is refused by round id.
  EXPECT_EQ(Push(job, "a", a, 1, {{1, 1.0f}}), v1::PUSH_OUTCOME_LATE);
  auto rounds = rounds_->ListRounds(job);
  ASSERT_EQ(rounds->rounds_size(), 1);  // Both went quiet past the online window.
  EXPECT_EQ(rounds->rounds(0).state(), v1::ROUND_STATE_FAILED);
  EXPECT_EQ(rounds->rounds(0).timeouts(), 2);
  EXPECT_EQ(rounds->rounds(0).replies_late(), 1);
  // Back online, round 2 opens; b drops out, a's result closes it at the deadline.
  ASSERT_TRUE(Pull(job, "b", b)->has_task());
  ASSERT_TRUE(Pull(job, "a", a)->has_task());
  EXPECT_EQ(Push(job, "a", a, 2, {{1, 1.0f}}), v1::PUSH_OUTCOME_ACCEPTED);
  now_ += absl::Seconds(31);
  rounds_->Tick();
  rounds = rounds_->ListRounds(job);
  EXPECT_EQ(rounds->rounds(1).state(), v1::ROUND_STATE_CLOSED);
  EXPECT_EQ(rounds->rounds(1).timeouts(), 1);
}

TEST_F(RoundManagerTest, MetricsCountRoundsByOutcomeAndFollowTheJob) {
  const auto metrics = [this] {
    MetricsWriter out;
    rounds_->CollectMetrics(&out);
    return out.text();
  };
  EXPECT_THAT(metrics(), HasSubstr("strata_federated_rounds_total{outcome=\"closed\"} 0\n"));
  EXPECT_THAT(metrics(), HasSubstr("strata_federated_rounds_total{outcome=\"failed\"} 0\n"));
  const std::string job = Submit(/*rounds=*/3, /*min_replies=*/2);
  const std::string label = "{job_id=\"" + job + "\"} ";
  const std::string a = Register(job, "a", 1), b = Register(job, "b", 1);
  ASSERT_TRUE(Pull(job, "a", a)->has_task());
  ASSERT_TRUE(Pull(job, "b", b)->has_task());
  std::string text = metrics();
  EXPECT_THAT(text, HasSubstr("strata_federated_round" + label + "1\n"));
  EXPECT_THAT(text, HasSubstr("strata_federated_clients_online" + label + "2\n"));
  EXPECT_THAT(text, HasSubstr("strata_federated_clients_sampled" + label + "2\n"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("bytes_up_per_client")));  // Nothing closed yet.
  // Round 1: one valid reply of the two needed by the deadline: failed.
  EXPECT_EQ(Push(job, "a", a, 1, {{1, 1.0f}}), v1::PUSH_OUTCOME_ACCEPTED);
  now_ += absl::Seconds(31);
  rounds_->Tick();
  text = metrics();
  EXPECT_THAT(text, HasSubstr("strata_federated_rounds_total{outcome=\"failed\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("strata_federated_rounds_total{outcome=\"closed\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("strata_federated_clients_sampled" + label + "0\n"));
  // Both back online (each past the online window): round 2 closes with both replies and
  // round 3 opens at once.
  EXPECT_FALSE(Pull(job, "a", a)->has_task());
  ASSERT_TRUE(Pull(job, "b", b)->has_task());
  ASSERT_TRUE(Pull(job, "a", a)->has_task());
  rounds_->CountBytes(job, "a", 100, 400);
  rounds_->CountBytes(job, "b", 300, 0);
  EXPECT_EQ(Push(job, "a", a, 2, {{1, 1.0f}}), v1::PUSH_OUTCOME_ACCEPTED);
  EXPECT_EQ(Push(job, "b", b, 2, {{2, 1.0f}}), v1::PUSH_OUTCOME_ACCEPTED);
  text = metrics();
  EXPECT_THAT(text, HasSubstr("strata_federated_rounds_total{outcome=\"closed\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("strata_federated_round" + label + "3\n"));
  EXPECT_THAT(text, HasSubstr("strata_federated_bytes_up_per_client" + label + "200\n"));
  EXPECT_THAT(text, HasSubstr("strata_federated_bytes_down_per_client" + label + "200\n"));
  // Each family's HELP/TYPE once, before its samples.
  EXPECT_THAT(text, HasSubstr("# TYPE strata_federated_rounds_total counter\n"
                              "strata_federated_rounds_total{outcome=\"closed\"} 1\n"
                              "strata_federated_rounds_total{outcome=\"failed\"} 1\n"));
  // The last round closes the job: its series go, the counters stay.
  EXPECT_EQ(Push(job, "a", a, 3, {{1, 1.0f}}), v1::PUSH_OUTCOME_ACCEPTED);
  EXPECT_EQ(Push(job, "b", b, 3, {{2, 1.0f}}), v1::PUSH_OUTCOME_ACCEPTED);
  EXPECT_EQ(manager_->Get(job, "")->state(), v1::JOB_STATE_COMPLETED);
  text = metrics();
  EXPECT_THAT(text, ::testing::Not(HasSubstr(job)));
  EXPECT_THAT(text, HasSubstr("strata_federated_rounds_total{outcome=\"closed\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("strata_federated_rounds_total{outcome=\"failed\"} 1\n"));
}

// FedKSeed-Pro: the next round's probabilities favor the seeds that moved the model more.
TEST_F(RoundManagerTest, SeedProbabilitiesFollowTheHistory) {
  const std::string job = Submit(/*rounds=*/2, /*min_replies=*/1, /*clip=*/0, /*pro=*/true);
  const std::string a = Register(job, "a", 1), b = Register(job, "b", 1);
  auto task = Pull(job, "a", a);
  ASSERT_TRUE(task.ok() && task->has_task());
  ASSERT_EQ(task->task().seed_probabilities_size(), 16);  // No history yet: uniform.
  EXPECT_DOUBLE_EQ(task->task().seed_probabilities(5), 1.0 / 16);
  ASSERT_TRUE(Pull(job, "b", b)->has_task());
  EXPECT_EQ(Push(job, "a", a, 1, {{2, 8.0f}, {9, -2.0f}}), v1::PUSH_OUTCOME_ACCEPTED);
  EXPECT_EQ(Push(job, "b", b, 1, {{2, 8.0f}}), v1::PUSH_OUTCOME_ACCEPTED);
  task = Pull(job, "a", a);
  ASSERT_TRUE(task.ok() && task->has_task());
  const auto& p = task->task().seed_probabilities();
  double total = 0;
  for (double v : p) total += v;
  EXPECT_NEAR(total, 1.0, 1e-12);
  // Mean |scalar|: seed 2 -> 8, seed 9 -> 1, others 0; min-max to [0, 1], then softmax.
  EXPECT_NEAR(p[2] / p[0], std::exp(1.0), 1e-12);
  EXPECT_NEAR(p[9] / p[0], std::exp(1.0 / 8), 1e-12);
  EXPECT_DOUBLE_EQ(p[0], p[15]);
}

// A client learns the job's task and θ0's checkpoint digest when it registers — typed, as the
// job normalized them — and again from a coordinator that read the job back; a job without them
// sends neither.
TEST_F(RoundManagerTest, RegisterHandsClientsTheTaskAndTheBaseCheckpointDigest) {
  const std::string digest(64, 'e');
  const std::string job = Submit(2, 1, 0, false, [&](v1::JobSpec& s) {
    s.mutable_federated()->set_base_checkpoint_sha256(digest);
    v1::TaskSpec* task = s.mutable_task();
    task->set_kind(v1::TASK_KIND_CLASSIFICATION);
    task->set_template_("{sentence} Verdict:");
    task->set_objective(v1::TASK_OBJECTIVE_ACCURACY);
    for (const auto& [value, text] : {std::pair{"0", "terrible"}, {"1", "great"}}) {
      v1::TaskLabel* label = task->add_labels();
      label->set_value(value);
      label->set_text(text);
    }
  });
  v1::RegisterClientRequest r;
  r.set_job_id(job);
  r.set_client_id("a");
  r.set_num_samples(256);
  for (int coordinator = 0; coordinator < 2; ++coordinator) {
    if (coordinator == 1) Open({});  // A restarted coordinator: the job from the store.
    absl::StatusOr<v1::RegisterClientResponse> response = rounds_->Register(r);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->base().checkpoint_sha256(), digest);
    ASSERT_TRUE(response->has_task());
    const v1::TaskSpec& task = response->task();
    EXPECT_EQ(task.kind(), v1::TASK_KIND_CLASSIFICATION);
    EXPECT_EQ(task.template_(), "{sentence} Verdict:");
    EXPECT_EQ(task.candidate_template(), " {candidate}");  // Normalized.
    EXPECT_EQ(task.label_field(), "label");
    EXPECT_EQ(task.objective(), v1::TASK_OBJECTIVE_ACCURACY);
    ASSERT_EQ(task.labels_size(), 2);
    EXPECT_EQ(task.labels(1).text(), "great");
    EXPECT_TRUE(task.train_path().empty());
  }
  const std::string text = Submit(1, 1);
  r.set_job_id(text);
  absl::StatusOr<v1::RegisterClientResponse> plain = rounds_->Register(r);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->has_task());
  EXPECT_TRUE(plain->base().checkpoint_sha256().empty());
}

TEST_F(RoundManagerTest, EnrollmentTokensAreBoundToTheirClient) {
  Open({{"tok-a", "a"}, {"tok-any", "*"}});
  const std::string job = Submit(1, 1);
  v1::RegisterClientRequest r;
  r.set_job_id(job);
  r.set_client_id("b");
  r.set_token("tok-a");
  EXPECT_EQ(rounds_->Register(r).status().code(), absl::StatusCode::kUnauthenticated);
  r.set_token("");
  EXPECT_EQ(rounds_->Register(r).status().code(), absl::StatusCode::kUnauthenticated);
  r.set_token("tok-any");
  EXPECT_TRUE(rounds_->Register(r).ok());
  r.set_client_id("a");
  r.set_token("tok-a");
  EXPECT_TRUE(rounds_->Register(r).ok());
  r.set_job_id("no-such-job");
  EXPECT_EQ(rounds_->Register(r).status().code(), absl::StatusCode::kNotFound);
}

// Without tokens the coordinator enrolls nobody unless told to; a client's weight is bounded by
// the job (registration refused, results REJECTED above it); the default clip comes from the
// job; every client has a call rate; sessions are 128 random bits.
TEST_F(RoundManagerTest, HostileClientsAreBounded) {
  Open({{"tok-a", "a"}, {"tok-b", "b"}});
  const std::string job = Submit(/*rounds=*/3, /*min_replies=*/2);
  const v1::Job stored = *manager_->Get(job, "");
  EXPECT_DOUBLE_EQ(stored.spec().federated().scalar_clip(), std::log(257.0) / 1e-3);
  EXPECT_EQ(stored.spec().federated().max_num_samples(), 10000);
  v1::RegisterClientRequest heavy;
  heavy.set_job_id(job);
  heavy.set_client_id("a");
  heavy.set_token("tok-a");
  heavy.set_num_samples(1'000'000'000);
  EXPECT_THAT(rounds_->Register(heavy).status().message(),
              HasSubstr("exceeds the job's federated.max_num_samples = 10000"));
  const std::string a = Register(job, "a", 10000, "tok-a");
  const std::string b = Register(job, "b", 10, "tok-b");
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  ASSERT_TRUE(Pull(job, "a", a)->has_task());
  ASSERT_TRUE(Pull(job, "b", b)->has_task());
  EXPECT_EQ(Push(job, "a", a, 1, {{1, 0.5f}}, /*samples=*/20000), v1::PUSH_OUTCOME_REJECTED);
  EXPECT_EQ(Push(job, "b", b, 1, {{1, 1e6f}}), v1::PUSH_OUTCOME_REJECTED);  // Beyond the clip.
  // The call rate: a burst of 40, then refused until the bucket refills.
  int refused = 0;
  for (int i = 0; i < 60; ++i) {
    refused += Pull(job, "b", b).status().code() == absl::StatusCode::kResourceExhausted;
  }
  EXPECT_GE(refused, 15);
  now_ += absl::Seconds(2);
  EXPECT_TRUE(Pull(job, "b", b).ok());
  // No tokens file and no --open_enrollment: nobody registers.
  RoundManager::Options closed;
  closed.store = store_.get();
  closed.jobs = manager_.get();
  RoundManager nobody(closed);
  v1::RegisterClientRequest r;
  r.set_job_id(job);
  r.set_client_id("c");
  EXPECT_THAT(nobody.Register(r).status().message(), HasSubstr("no --open_enrollment"));
}

}  // namespace
}  // namespace strata
