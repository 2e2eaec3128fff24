// Task scoring through the model, every family: candidate scores of a right-padded batch equal
// each example scored alone; they equal the sums of per-token log-probabilities computed from
// the independent PyTorch reference's logits; and a first-order pass with the candidate
// objective gives the gradient the objective's row weights make of the rows' own gradients.
#include <cmath>
#include <cstdlib>
#include <random>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/model/testing/torch_parity.h"
#include "runtime/model/transformer.h"
#include "runtime/task/task_batch.h"
#include "runtime/task/task_evaluator.h"
#include "runtime/testing/tiny_models.h"

namespace strata::task {
namespace {

class TaskModelTest : public ::testing::TestWithParam<ModelFamily> {
 protected:
  void SetUp() override {
    config_ = testing_models::Tiny(GetParam(), 2);
    auto model = Transformer::Create(config_);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
    model_->InitializeParameters(11);
    testing_parity::ScaleParameters(*model_, 11);
    task_.kind = TaskKind::kClassification;
    task_.labels = {{"0", "a"}, {"1", "b"}, {"2", "c"}};
    // Examples of different prompt and candidate lengths.
    std::mt19937 rng(5);
    auto ids = [&](int n) {
      std::vector<int32_t> v(n);
      for (int32_t& x : v) x = static_cast<int32_t>(rng() % config_.vocab_size);
      return v;
    };
    for (int e = 0; e < 5; ++e) {
      TaskExample ex;
      ex.prompt = ids(2 + (e * 3) % 7);
      ex.candidates = {ids(1), ids(1 + e % 3), ids(2)};
      ex.label = e % 3;
      examples_.push_back(std::move(ex));
    }
  }
  BatchLoss ModelLoss() {
    return [this](absl::Span<const int32_t> x, absl::Span<const int32_t> y, int B, int T) {
      return model_->Loss(x, y, B, T);
    };
  }

  ModelConfig config_;
  std::unique_ptr<Transformer> model_;
  TaskDefinition task_;
  std::vector<TaskExample> examples_;
};

TEST_P(TaskModelTest, PaddedBatchScoresEqualEachExampleAlone) {
  absl::StatusOr<TaskScores> batched =
      EvaluateTask(task_, examples_, model_.get(), ModelLoss(), 5, config_.max_seq_len);
  ASSERT_TRUE(batched.ok()) << batched.status();
  for (size_t e = 0; e < examples_.size(); ++e) {
    absl::StatusOr<TaskScores> alone = EvaluateTask(task_, {&examples_[e], 1}, model_.get(),
                                                    ModelLoss(), 1, config_.max_seq_len);
    ASSERT_TRUE(alone.ok()) << alone.status();
    for (size_t c = 0; c < 3; ++c) {
      const double a = alone->candidate_scores[0][c], b = batched->candidate_scores[e][c];
      EXPECT_NEAR(a, b, 2e-5 * (1 + std::fabs(a))) << "example " << e << " candidate " << c;
    }
  }
  EXPECT_EQ(model_->objective(), nullptr);  // Restored.
}

TEST_P(TaskModelTest, CandidateScoresEqualPyTorchLogProbabilities) {
  std::string why;
  if (!testing_parity::TorchAvailable(&why)) GTEST_SKIP() << "python3-torch: " << why;
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir =
      absl::StrCat(tmp ? tmp : "/tmp", "/task_", static_cast<int>(GetParam()));
  ASSERT_TRUE(SaveHfCheckpoint(*model_, dir).ok());
  std::vector<const TaskExample*> all;
  for (const TaskExample& e : examples_) all.push_back(&e);
  TaskBatch batch;
  ASSERT_TRUE(BuildTaskBatch(task_, all, config_.max_seq_len, &batch).ok());
  std::vector<int32_t> ref_targets = batch.targets;
  for (int32_t& t : ref_targets) t = t < 0 ? -100 : t;
  absl::StatusOr<SafetensorsFile> out =
      testing_parity::RunReference(dir, batch.rows, batch.T, batch.tokens, ref_targets);
  ASSERT_TRUE(out.ok()) << out.status();
  const std::vector<float> logits = testing_parity::ReadOutput(*out, "logits");
  const int V = config_.vocab_size;
  ASSERT_EQ(logits.size(), static_cast<size_t>(batch.rows) * batch.T * V);
  absl::StatusOr<TaskScores> scores =
      EvaluateTask(task_, examples_, model_.get(), ModelLoss(), 5, config_.max_seq_len);
  ASSERT_TRUE(scores.ok()) << scores.status();
  for (int r = 0; r < batch.rows; ++r) {
    double reference = 0;  // Sum over the candidate's tokens of log softmax(logits)[target].
    for (int t = 0; t < batch.T; ++t) {
      const int32_t target = batch.targets[r * batch.T + t];
      if (target < 0) continue;
      const float* row = logits.data() + (static_cast<size_t>(r) * batch.T + t) * V;
      double mx = row[0];
      for (int v = 1; v < V; ++v) mx = std::max(mx, static_cast<double>(row[v]));
      double sum = 0;
      for (int v = 0; v < V; ++v) sum += std::exp(row[v] - mx);
      reference += row[target] - mx - std::log(sum);
    }
    const double ours = scores->candidate_scores[r / 3][r % 3];
    EXPECT_NEAR(ours, reference, 1e-4 * (1 + std::fabs(reference))) << "row " << r;
  }
}

TEST_P(TaskModelTest, ObjectiveGradientIsTheWeightedSumOfRowGradients) {
  std::vector<const TaskExample*> all;
  for (const TaskExample& e : examples_) all.push_back(&e);
  TaskBatch batch;
  ASSERT_TRUE(BuildTaskBatch(task_, all, config_.max_seq_len, &batch).ok());
  // The objective's gradient.
  model_->ZeroGrads();
  model_->SetObjective(&batch.objective);
  absl::StatusOr<float> loss = model_->ForwardBackward(batch.tokens, batch.targets, batch.rows,
                                                       batch.T);
  model_->SetObjective(nullptr);
  ASSERT_TRUE(loss.ok()) << loss.status();
  const std::vector<float> grad(model_->grads().begin(), model_->grads().end());
  // The same from each row alone: weight_r * d(row r's summed loss) = weight_r * count_r *
  // d(row r's mean loss).
  std::vector<double> nll(batch.rows);
  std::vector<int64_t> counts(batch.rows);
  std::vector<std::vector<float>> row_grads;
  for (int r = 0; r < batch.rows; ++r) {
    const std::vector<int32_t> x(batch.tokens.begin() + r * batch.T,
                                 batch.tokens.begin() + (r + 1) * batch.T);
    const std::vector<int32_t> y(batch.targets.begin() + r * batch.T,
                                 batch.targets.begin() + (r + 1) * batch.T);
    for (int32_t t : y) counts[r] += t >= 0;
    model_->ZeroGrads();
    absl::StatusOr<float> mean = model_->ForwardBackward(x, y, 1, batch.T);
    ASSERT_TRUE(mean.ok());
    nll[r] = *mean * counts[r];
    row_grads.emplace_back(model_->grads().begin(), model_->grads().end());
  }
  EXPECT_NEAR(*loss, batch.objective.Loss(nll, counts), 1e-5);
  std::vector<float> weights(batch.rows);
  ASSERT_TRUE(batch.objective.RowWeights(nll, counts, absl::MakeSpan(weights)).ok());
  double max_ref = 0, max_diff = 0;
  for (size_t i = 0; i < grad.size(); ++i) {
    double expected = 0;
    for (int r = 0; r < batch.rows; ++r) expected += weights[r] * counts[r] * row_grads[r][i];
    max_ref = std::max(max_ref, std::fabs(expected));
    max_diff = std::max(max_diff, std::fabs(expected - grad[i]));
  }
  EXPECT_GT(max_ref, 0);
  EXPECT_LE(max_diff, 1e-4 * max_ref) << "max|grad| " << max_ref;
}

INSTANTIATE_TEST_SUITE_P(EveryFamily, TaskModelTest,
                         ::testing::Values(ModelFamily::kGpt2, ModelFamily::kLlama,
                                           ModelFamily::kOpt, ModelFamily::kQwen2,
                                           ModelFamily::kQwen3, ModelFamily::kMistral),
                         [](const ::testing::TestParamInfo<ModelFamily>& info) {
                           return std::string(ModelFamilyName(info.param));
                         });

}  // namespace
}  // namespace strata::task
