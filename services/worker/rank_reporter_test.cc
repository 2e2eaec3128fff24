// RankReporter against a fake coordinator: records become the right RPCs, ZO step records and
// checkpoints survive failed sends and go in order, progress merges evaluations (loss, step and
// task metrics, replaced whole by the next evaluation), lines are sent once, a stale answer is
// passed on, and the exit error is the rank's own words.
#include "services/worker/rank_reporter.h"

#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

class FakeSink : public ReportSink {
 public:
  absl::StatusOr<bool> Progress(const v1::ProgressReport& report) override {
    if (down) return absl::UnavailableError("down");
    progress.push_back(report);
    return stale;
  }
  absl::Status StepLog(const v1::StepLogReport& report) override {
    if (down) return absl::UnavailableError("down");
    step_logs.push_back(report);
    return absl::OkStatus();
  }
  absl::Status Checkpoint(const v1::CheckpointReport& report) override {
    if (down) return absl::UnavailableError("down");
    checkpoints.push_back(report);
    return absl::OkStatus();
  }
  bool down = false, stale = false;
  std::vector<v1::ProgressReport> progress;
  std::vector<v1::StepLogReport> step_logs;
  std::vector<v1::CheckpointReport> checkpoints;
};

v1::RankRef Ref() {
  v1::RankRef ref;
  ref.set_job_id("j-1");
  ref.set_attempt(2);
  return ref;
}

v1::RankReport Step(int64_t step) {
  v1::RankReport r;
  r.mutable_zo_step()->set_step(step);
  r.mutable_zo_step()->set_lr(1e-5);
  return r;
}

TEST(RankReporterTest, NothingIsLostWhileTheCoordinatorIsDown) {
  FakeSink sink;
  RankReporter reporter(Ref(), "w1");
  v1::RankReport progress;
  progress.mutable_progress()->set_step(2);
  progress.mutable_progress()->set_lr(1e-5);
  reporter.OnRecord(progress);
  reporter.OnRecord(Step(1));
  reporter.OnRecord(Step(2));
  v1::RankReport checkpoint;
  checkpoint.mutable_checkpoint()->set_step(2);
  checkpoint.mutable_checkpoint()->set_path("/w/ckpt-0000000002");
  reporter.OnRecord(checkpoint);
  reporter.OnLine("step 2/10 | loss 3.1");
  sink.down = true;
  EXPECT_FALSE(reporter.Flush(sink));
  reporter.OnRecord(Step(3));
  sink.down = false;
  EXPECT_FALSE(reporter.Flush(sink));
  ASSERT_EQ(sink.step_logs.size(), 1u);
  ASSERT_EQ(sink.step_logs[0].records_size(), 3);
  EXPECT_EQ(sink.step_logs[0].records(2).step(), 3);
  EXPECT_EQ(sink.step_logs[0].ref().job_id(), "j-1");
  ASSERT_EQ(sink.checkpoints.size(), 1u);
  EXPECT_EQ(sink.checkpoints[0].worker_id(), "w1");
  EXPECT_EQ(sink.checkpoints[0].checkpoint().path(), "/w/ckpt-0000000002");
  ASSERT_EQ(sink.progress.size(), 1u);
  EXPECT_EQ(sink.progress[0].progress().lr(), 1e-5);
  EXPECT_TRUE(std::isnan(sink.progress[0].progress().eval_loss()));
  ASSERT_EQ(sink.progress[0].logs_size(), 1);
  EXPECT_EQ(sink.progress[0].logs(0).text(), "step 2/10 | loss 3.1");
  // Nothing new: nothing sent.
  EXPECT_FALSE(reporter.Flush(sink));
  EXPECT_EQ(sink.progress.size(), 1u);
  EXPECT_EQ(sink.step_logs.size(), 1u);
}

TEST(RankReporterTest, EvaluationsMergeIntoProgressAndStaleIsPassedOn) {
  FakeSink sink;
  RankReporter reporter(Ref(), "w1");
  v1::RankReport eval;
  eval.mutable_eval()->set_step(10);
  eval.mutable_eval()->set_loss(2.5);
  reporter.OnRecord(eval);
  v1::RankReport progress;
  progress.mutable_progress()->set_step(11);
  reporter.OnRecord(progress);
  sink.stale = true;
  EXPECT_TRUE(reporter.Flush(sink));
  ASSERT_EQ(sink.progress.size(), 1u);
  EXPECT_EQ(sink.progress[0].progress().step(), 11);
  EXPECT_EQ(sink.progress[0].progress().eval_loss(), 2.5);
  EXPECT_EQ(reporter.step(), 11);
}

TEST(RankReporterTest, TaskMetricsTravelWithTheirEvaluationUntilTheNextOne) {
  FakeSink sink;
  RankReporter reporter(Ref(), "w1");
  v1::RankReport eval;
  eval.mutable_eval()->set_step(20);
  eval.mutable_eval()->set_loss(0.7);
  (*eval.mutable_eval()->mutable_metrics())["accuracy"] = 0.75;
  (*eval.mutable_eval()->mutable_metrics())["f1"] = 0.6;
  reporter.OnRecord(eval);
  v1::RankReport progress;
  progress.mutable_progress()->set_step(25);
  reporter.OnRecord(progress);
  EXPECT_FALSE(reporter.Flush(sink));
  ASSERT_EQ(sink.progress.size(), 1u);
  const v1::JobProgress& first = sink.progress[0].progress();
  EXPECT_EQ(first.step(), 25);
  EXPECT_EQ(first.eval_step(), 20);
  EXPECT_EQ(first.eval_loss(), 0.7);
  EXPECT_THAT(first.eval_metrics(),
              ::testing::UnorderedElementsAre(::testing::Pair("accuracy", 0.75),
                                              ::testing::Pair("f1", 0.6)));
  // The next evaluation replaces the whole set: a metric it lacks is not carried over.
  eval.mutable_eval()->set_step(40);
  eval.mutable_eval()->set_loss(0.5);
  eval.mutable_eval()->mutable_metrics()->clear();
  (*eval.mutable_eval()->mutable_metrics())["accuracy"] = 0.8;
  reporter.OnRecord(eval);
  progress.mutable_progress()->set_step(41);
  reporter.OnRecord(progress);
  EXPECT_FALSE(reporter.Flush(sink));
  ASSERT_EQ(sink.progress.size(), 2u);
  const v1::JobProgress& second = sink.progress[1].progress();
  EXPECT_EQ(second.step(), 41);
  EXPECT_EQ(second.eval_step(), 40);
  EXPECT_EQ(second.eval_loss(), 0.5);
  EXPECT_THAT(second.eval_metrics(),
              ::testing::UnorderedElementsAre(::testing::Pair("accuracy", 0.8)));
}

TEST(RankReporterTest, TheExitErrorIsTheRanksOwnWords) {
  RankReporter reporter(Ref(), "w1");
  reporter.OnLine("exec /x/strata-train: No such file or directory");
  EXPECT_EQ(reporter.exit_error(), "exec /x/strata-train: No such file or directory");
  reporter.OnLine("strata-train: INVALID_ARGUMENT: spec.model.family: ...");
  reporter.OnLine("a later line");
  v1::RankReport final;
  final.mutable_final()->set_error("INVALID_ARGUMENT: spec.model.family: ...");
  reporter.OnRecord(final);
  EXPECT_EQ(reporter.exit_error(), "INVALID_ARGUMENT: spec.model.family: ...");
}

}  // namespace
}  // namespace strata
