// Task metrics: accuracy and macro F1 of predicted classes, and the SQuAD answer metrics —
// exact match and token F1 after normalization (lowercase, punctuation and the articles a / an /
// the removed, whitespace collapsed), the best over the accepted answers.
#ifndef STRATA_RUNTIME_TASK_TASK_METRICS_H_
#define STRATA_RUNTIME_TASK_TASK_METRICS_H_

#include <string>
#include <vector>

#include "absl/types/span.h"

namespace strata::task {

double Accuracy(absl::Span<const int> predictions, absl::Span<const int> labels);
// The mean over classes 0..classes-1 that occur (as a label or a prediction) of each class's F1.
double MacroF1(absl::Span<const int> predictions, absl::Span<const int> labels, int classes);

std::string NormalizeAnswer(const std::string& text);
double ExactMatch(const std::string& prediction, absl::Span<const std::string> answers);
double TokenF1(const std::string& prediction, absl::Span<const std::string> answers);

}  // namespace strata::task

#endif  // STRATA_RUNTIME_TASK_TASK_METRICS_H_
