// RecordEvaluation: the loss is best lowest and task metrics best highest, ties keep the earlier
// best, the latest follows the newest evaluation (even one at a lower step, after a restart from
// an older checkpoint), NaN values and progress without an evaluation change nothing, and the
// summaries stay sorted by name.
#include "services/coordinator/eval_summary.h"

#include <cmath>
#include <map>
#include <string>

#include "gtest/gtest.h"

namespace strata {
namespace {

v1::JobProgress Evaluation(int64_t step, double loss,
                           const std::map<std::string, double>& metrics) {
  v1::JobProgress p;
  p.set_step(step + 3);  // Progress goes on after the evaluation: its step is eval_step.
  p.set_eval_step(step);
  p.set_eval_loss(loss);
  for (const auto& [name, value] : metrics) (*p.mutable_eval_metrics())[name] = value;
  return p;
}

std::string Describe(const google::protobuf::RepeatedPtrField<v1::EvalMetricSummary>& all) {
  std::string out;
  for (const v1::EvalMetricSummary& s : all) {
    out += s.name() + " latest " + std::to_string(s.latest()) + "@" +
           std::to_string(s.latest_step()) + " best " + std::to_string(s.best()) + "@" +
           std::to_string(s.best_step()) + "\n";
  }
  return out;
}

TEST(EvalSummaryTest, LossIsBestLowestAndTaskMetricsHighest) {
  google::protobuf::RepeatedPtrField<v1::EvalMetricSummary> s;
  RecordEvaluation(Evaluation(10, 0.9, {{"accuracy", 0.6}, {"f1", 0.5}}), &s);
  RecordEvaluation(Evaluation(20, 0.7, {{"accuracy", 0.8}, {"f1", 0.4}}), &s);
  RecordEvaluation(Evaluation(30, 0.8, {{"accuracy", 0.7}, {"f1", 0.5}}), &s);
  EXPECT_EQ(Describe(s),
            "accuracy latest 0.700000@30 best 0.800000@20\n"
            "f1 latest 0.500000@30 best 0.500000@10\n"  // A tie keeps the earlier best.
            "loss latest 0.800000@30 best 0.700000@20\n");
  EXPECT_TRUE(LowerIsBetter("loss"));
  EXPECT_FALSE(LowerIsBetter("exact_match"));
}

TEST(EvalSummaryTest, NothingWithoutAnEvaluationAndNaNIsSkipped) {
  google::protobuf::RepeatedPtrField<v1::EvalMetricSummary> s;
  v1::JobProgress none;
  none.set_step(5);
  none.set_eval_loss(std::nan(""));
  EXPECT_FALSE(HasEvaluation(none));
  RecordEvaluation(none, &s);
  EXPECT_TRUE(s.empty());
  // A task evaluation without a loss, and a metric that came out NaN.
  RecordEvaluation(Evaluation(8, std::nan(""), {{"token_f1", 0.25}, {"exact_match", std::nan("")}}),
                   &s);
  EXPECT_EQ(Describe(s), "token_f1 latest 0.250000@8 best 0.250000@8\n");
  // The same evaluation again (every progress report carries it): unchanged.
  RecordEvaluation(Evaluation(8, std::nan(""), {{"token_f1", 0.25}}), &s);
  EXPECT_EQ(Describe(s), "token_f1 latest 0.250000@8 best 0.250000@8\n");
}

TEST(EvalSummaryTest, TheLatestFollowsTheNewestEvaluationAndNamesStaySorted) {
  google::protobuf::RepeatedPtrField<v1::EvalMetricSummary> s;
  RecordEvaluation(Evaluation(40, std::nan(""), {{"zeta", 0.9}}), &s);
  RecordEvaluation(Evaluation(50, std::nan(""), {{"beta", 0.3}, {"alpha", 0.1}}), &s);
  // A restarted attempt resumed from an older checkpoint: step 30 is the newest evaluation.
  RecordEvaluation(Evaluation(30, std::nan(""), {{"zeta", 0.5}, {"mid", 0.2}}), &s);
  EXPECT_EQ(Describe(s),
            "alpha latest 0.100000@50 best 0.100000@50\n"
            "beta latest 0.300000@50 best 0.300000@50\n"
            "mid latest 0.200000@30 best 0.200000@30\n"
            "zeta latest 0.500000@30 best 0.900000@40\n");
}

}  // namespace
}  // namespace strata
