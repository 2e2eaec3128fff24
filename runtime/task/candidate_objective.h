// CandidateObjective: the SequenceObjective of a batch of candidate rows (classification and
// multiple choice). Each example owns `count` consecutive rows, one per candidate; a candidate's
// score is minus its row's summed token loss (the log-likelihood of its tokens after the
// prompt), or that divided by its token count. The objective is the batch mean of the
// cross-entropy of the right candidate under softmax(scores) (MeZO's train_as_classification),
// or 1 - the batch's accuracy, or 1 - its macro F1 (no gradient: zeroth-order only).
#ifndef STRATA_RUNTIME_TASK_CANDIDATE_OBJECTIVE_H_
#define STRATA_RUNTIME_TASK_CANDIDATE_OBJECTIVE_H_

#include <vector>

#include "runtime/model/sequence_objective.h"
#include "runtime/task/task_definition.h"

namespace strata::task {

struct CandidateGroup {
  int first_row = 0;
  int count = 0;
  int label = 0;
};

class CandidateObjective final : public SequenceObjective {
 public:
  CandidateObjective() = default;
  CandidateObjective(std::vector<CandidateGroup> groups, CandidateScore score,
                     TaskObjective objective)
      : groups_(std::move(groups)), score_(score), objective_(objective) {}

  float Loss(absl::Span<const double> row_nll,
             absl::Span<const int64_t> row_tokens) const override;
  absl::Status RowWeights(absl::Span<const double> row_nll, absl::Span<const int64_t> row_tokens,
                          absl::Span<float> weights) const override;

  // Each candidate's score (rows in order).
  std::vector<double> Scores(absl::Span<const double> row_nll,
                             absl::Span<const int64_t> row_tokens) const;
  // Each example's chosen candidate: the highest score (the first of equals).
  std::vector<int> Predictions(absl::Span<const double> row_nll,
                               absl::Span<const int64_t> row_tokens) const;
  // The mean cross-entropy of the right candidates.
  double CrossEntropy(absl::Span<const double> row_nll, absl::Span<const int64_t> row_tokens) const;

  const std::vector<CandidateGroup>& groups() const { return groups_; }

 private:
  std::vector<CandidateGroup> groups_;
  CandidateScore score_ = CandidateScore::kSum;
  TaskObjective objective_ = TaskObjective::kCrossEntropy;
};

}  // namespace strata::task

#endif  // STRATA_RUNTIME_TASK_CANDIDATE_OBJECTIVE_H_
