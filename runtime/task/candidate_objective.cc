// See candidate_objective.h.
#include "runtime/task/candidate_objective.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "runtime/task/task_metrics.h"

namespace strata::task {

std::vector<double> CandidateObjective::Scores(absl::Span<const double> row_nll,
                                               absl::Span<const int64_t> row_tokens) const {
  std::vector<double> scores(row_nll.size());
  for (size_t r = 0; r < row_nll.size(); ++r) {
    scores[r] = -row_nll[r];
    if (score_ == CandidateScore::kMean && row_tokens[r] > 0) scores[r] /= row_tokens[r];
  }
  return scores;
}

std::vector<int> CandidateObjective::Predictions(absl::Span<const double> row_nll,
                                                 absl::Span<const int64_t> row_tokens) const {
  const std::vector<double> scores = Scores(row_nll, row_tokens);
  std::vector<int> out;
  out.reserve(groups_.size());
  for (const CandidateGroup& g : groups_) {
    int best = 0;
    for (int c = 1; c < g.count; ++c) {
      if (scores[g.first_row + c] > scores[g.first_row + best]) best = c;
    }
    out.push_back(best);
  }
  return out;
}

double CandidateObjective::CrossEntropy(absl::Span<const double> row_nll,
                                        absl::Span<const int64_t> row_tokens) const {
  const std::vector<double> scores = Scores(row_nll, row_tokens);
  double total = 0;
  for (const CandidateGroup& g : groups_) {
    const double* s = scores.data() + g.first_row;
    const double mx = *std::max_element(s, s + g.count);
    double sum = 0;
    for (int c = 0; c < g.count; ++c) sum += std::exp(s[c] - mx);
    total += std::log(sum) + mx - s[g.label];
  }
  return groups_.empty() ? 0.0 : total / static_cast<double>(groups_.size());
}

float CandidateObjective::Loss(absl::Span<const double> row_nll,
                               absl::Span<const int64_t> row_tokens) const {
  if (objective_ == TaskObjective::kCrossEntropy) {
    return static_cast<float>(CrossEntropy(row_nll, row_tokens));
  }
  const std::vector<int> predictions = Predictions(row_nll, row_tokens);
  std::vector<int> labels;
  int classes = 0;
  for (const CandidateGroup& g : groups_) {
    labels.push_back(g.label);
    classes = std::max(classes, g.count);
  }
  const double value = objective_ == TaskObjective::kAccuracy
                           ? Accuracy(predictions, labels)
                           : MacroF1(predictions, labels, classes);
  return static_cast<float>(1.0 - value);
}

absl::Status CandidateObjective::RowWeights(absl::Span<const double> row_nll,
                                            absl::Span<const int64_t> row_tokens,
                                            absl::Span<float> weights) const {
  if (objective_ != TaskObjective::kCrossEntropy) {
    return absl::FailedPreconditionError(
        "task.objective: accuracy and F1 have no gradient; they train zeroth-order only");
  }
  std::fill(weights.begin(), weights.end(), 0.0f);
  const std::vector<double> scores = Scores(row_nll, row_tokens);
  const double n = static_cast<double>(groups_.size());
  for (const CandidateGroup& g : groups_) {
    const double* s = scores.data() + g.first_row;
    const double mx = *std::max_element(s, s + g.count);
    double sum = 0;
    for (int c = 0; c < g.count; ++c) sum += std::exp(s[c] - mx);
    for (int c = 0; c < g.count; ++c) {
      const int row = g.first_row + c;
      const double p = std::exp(s[c] - mx) / sum;
      // d(-log p_label)/d score_c = p_c - [c == label]; d score / d nll = -1 (or -1/tokens).
      double w = ((c == g.label ? 1.0 : 0.0) - p) / n;
      if (score_ == CandidateScore::kMean && row_tokens[row] > 0) w /= row_tokens[row];
      weights[row] = static_cast<float>(w);
    }
  }
  return absl::OkStatus();
}

}  // namespace strata::task
