// See task_evaluator.h.
#include "runtime/task/task_evaluator.h"

#include <algorithm>

#include "runtime/base/status_macros.h"
#include "runtime/task/task_batch.h"
#include "runtime/task/task_metrics.h"

namespace strata::task {
namespace {

// Passes the rows' sums through, keeping them; the value is the batch's own objective (or the
// mean token loss without one).
class RecordingObjective final : public SequenceObjective {
 public:
  explicit RecordingObjective(const SequenceObjective* inner) : inner_(inner) {}
  float Loss(absl::Span<const double> row_nll,
             absl::Span<const int64_t> row_tokens) const override {
    row_nll_.assign(row_nll.begin(), row_nll.end());
    row_tokens_.assign(row_tokens.begin(), row_tokens.end());
    if (inner_ != nullptr) return inner_->Loss(row_nll, row_tokens);
    double nll = 0;
    int64_t tokens = 0;
    for (size_t r = 0; r < row_nll.size(); ++r) {
      nll += row_nll[r];
      tokens += row_tokens[r];
    }
    return static_cast<float>(nll / static_cast<double>(std::max<int64_t>(tokens, 1)));
  }
  absl::Status RowWeights(absl::Span<const double>, absl::Span<const int64_t>,
                          absl::Span<float>) const override {
    return absl::FailedPreconditionError("evaluation computes no gradient");
  }
  std::vector<double>& row_nll() const { return row_nll_; }
  std::vector<int64_t>& row_tokens() const { return row_tokens_; }

 private:
  const SequenceObjective* inner_;
  mutable std::vector<double> row_nll_;
  mutable std::vector<int64_t> row_tokens_;
};

}  // namespace

absl::StatusOr<TaskScores> EvaluateTask(const TaskDefinition& task,
                                        absl::Span<const TaskExample> examples, Transformer* model,
                                        const BatchLoss& loss, int batch_examples, int max_length,
                                        const Decode& decode) {
  if (examples.empty()) return absl::InvalidArgumentError("no examples to evaluate");
  if (batch_examples < 1) return absl::InvalidArgumentError("evaluation batch must be positive");
  TaskScores scores;
  std::vector<int> labels;
  int classes = 0;
  double ce_total = 0, nll_total = 0;
  int64_t token_total = 0;
  const SequenceObjective* previous = model->objective();
  TaskBatch batch;
  for (size_t first = 0; first < examples.size(); first += batch_examples) {
    const size_t count = std::min<size_t>(batch_examples, examples.size() - first);
    std::vector<const TaskExample*> chosen;
    for (size_t i = 0; i < count; ++i) chosen.push_back(&examples[first + i]);
    STRATA_RETURN_IF_ERROR(BuildTaskBatch(task, chosen, max_length, &batch));
    RecordingObjective recording(batch.sequence_objective());
    model->SetObjective(&recording);
    absl::StatusOr<float> value = loss(batch.tokens, batch.targets, batch.rows, batch.T);
    model->SetObjective(previous);
    if (!value.ok()) return value.status();
    const std::vector<double>& nll = recording.row_nll();
    const std::vector<int64_t>& tokens = recording.row_tokens();
    if (static_cast<int>(nll.size()) != batch.rows) {
      return absl::InternalError("the model's forward did not report every row");
    }
    if (batch.has_candidates) {
      const std::vector<double> s = batch.objective.Scores(nll, tokens);
      const std::vector<int> predicted = batch.objective.Predictions(nll, tokens);
      ce_total += batch.objective.CrossEntropy(nll, tokens) * static_cast<double>(count);
      for (size_t i = 0; i < count; ++i) {
        const CandidateGroup& g = batch.objective.groups()[i];
        scores.candidate_scores.emplace_back(s.begin() + g.first_row,
                                             s.begin() + g.first_row + g.count);
        scores.predictions.push_back(predicted[i]);
        labels.push_back(g.label);
        classes = std::max(classes, g.count);
      }
    } else {
      for (int r = 0; r < batch.rows; ++r) {
        nll_total += nll[r];
        token_total += tokens[r];
      }
    }
  }
  const double n = static_cast<double>(examples.size());
  if (task.kind != TaskKind::kGeneration) {
    scores.loss = ce_total / n;
    scores.metrics["accuracy"] = Accuracy(scores.predictions, labels);
    scores.metrics["f1"] = MacroF1(scores.predictions, labels, classes);
    return scores;
  }
  scores.loss = nll_total / static_cast<double>(std::max<int64_t>(token_total, 1));
  if (decode) {
    double em = 0, f1 = 0;
    for (const TaskExample& example : examples) {
      STRATA_ASSIGN_OR_RETURN(std::string text, decode(example.prompt));
      em += ExactMatch(text, example.answers);
      f1 += TokenF1(text, example.answers);
      scores.generations.push_back(std::move(text));
    }
    scores.metrics["exact_match"] = em / n;
    scores.metrics["token_f1"] = f1 / n;
  }
  return scores;
}

}  // namespace strata::task
