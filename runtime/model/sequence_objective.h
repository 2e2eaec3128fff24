// SequenceObjective: how a pass over a batch of rows turns its scored tokens' losses into the
// one number it returns, for objectives that are not the mean token loss (a task's
// cross-entropy over candidate answers, its accuracy). The model sums each row's token losses
// (-log p of every target that is not ignored) and hands the per-row sums to the objective;
// training passes ask it for d(objective)/d(row sum) too.
#ifndef STRATA_RUNTIME_MODEL_SEQUENCE_OBJECTIVE_H_
#define STRATA_RUNTIME_MODEL_SEQUENCE_OBJECTIVE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace strata {

class SequenceObjective {
 public:
  virtual ~SequenceObjective() = default;
  // row_nll[r]: the summed -log p of row r's scored targets; row_tokens[r]: how many it has.
  virtual float Loss(absl::Span<const double> row_nll,
                     absl::Span<const int64_t> row_tokens) const = 0;
  // d Loss / d row_nll[r] into weights[r] (the weight each of row r's target tokens' losses
  // gets in the gradient). FAILED_PRECONDITION for an objective without a gradient.
  virtual absl::Status RowWeights(absl::Span<const double> row_nll,
                                  absl::Span<const int64_t> row_tokens,
                                  absl::Span<float> weights) const = 0;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_MODEL_SEQUENCE_OBJECTIVE_H_
