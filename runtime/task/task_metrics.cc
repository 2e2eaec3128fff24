// See task_metrics.h.
#include "runtime/task/task_metrics.h"

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace strata::task {

double Accuracy(absl::Span<const int> predictions, absl::Span<const int> labels) {
  if (labels.empty()) return 0.0;
  int64_t right = 0;
  for (size_t i = 0; i < labels.size(); ++i) right += predictions[i] == labels[i];
  return static_cast<double>(right) / static_cast<double>(labels.size());
}

double MacroF1(absl::Span<const int> predictions, absl::Span<const int> labels, int classes) {
  double total = 0;
  int present = 0;
  for (int c = 0; c < classes; ++c) {
    int64_t tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < labels.size(); ++i) {
      const bool predicted = predictions[i] == c, actual = labels[i] == c;
      tp += predicted && actual;
      fp += predicted && !actual;
      fn += !predicted && actual;
    }
    if (tp + fp + fn == 0) continue;
    ++present;
    total += 2.0 * tp / static_cast<double>(2 * tp + fp + fn);
  }
  return present == 0 ? 0.0 : total / present;
}

std::string NormalizeAnswer(const std::string& text) {
  std::string lowered;
  for (const char c : text) {
    if (absl::ascii_ispunct(c)) continue;
    lowered.push_back(absl::ascii_tolower(c));
  }
  std::vector<std::string> words;
  for (absl::string_view w : absl::StrSplit(lowered, absl::ByAnyChar(" \t\n\r"), absl::SkipEmpty())) {
    if (w == "a" || w == "an" || w == "the") continue;
    words.emplace_back(w);
  }
  return absl::StrJoin(words, " ");
}

double ExactMatch(const std::string& prediction, absl::Span<const std::string> answers) {
  const std::string p = NormalizeAnswer(prediction);
  for (const std::string& a : answers) {
    if (NormalizeAnswer(a) == p) return 1.0;
  }
  return 0.0;
}

double TokenF1(const std::string& prediction, absl::Span<const std::string> answers) {
  const std::vector<std::string> p = absl::StrSplit(NormalizeAnswer(prediction), ' ', absl::SkipEmpty());
  double best = 0;
  for (const std::string& answer : answers) {
    const std::vector<std::string> a = absl::StrSplit(NormalizeAnswer(answer), ' ', absl::SkipEmpty());
    if (p.empty() || a.empty()) {
      best = std::max(best, p.empty() && a.empty() ? 1.0 : 0.0);
      continue;
    }
    std::map<std::string, int> counts;
    for (const std::string& w : a) ++counts[w];
    int common = 0;
    for (const std::string& w : p) {
      if (auto it = counts.find(w); it != counts.end() && it->second > 0) {
        --it->second;
        ++common;
      }
    }
    if (common == 0) continue;
    const double precision = static_cast<double>(common) / p.size();
    const double recall = static_cast<double>(common) / a.size();
    best = std::max(best, 2 * precision * recall / (precision + recall));
  }
  return best;
}

}  // namespace strata::task
