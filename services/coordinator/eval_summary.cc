// See eval_summary.h.
#include "services/coordinator/eval_summary.h"

#include <algorithm>
#include <cmath>

namespace strata {
namespace {

// Records `value` of metric `name` at `step`.
void Record(const std::string& name, double value, int64_t step,
            google::protobuf::RepeatedPtrField<v1::EvalMetricSummary>* summaries) {
  if (std::isnan(value)) return;
  auto it = std::lower_bound(
      summaries->begin(), summaries->end(), name,
      [](const v1::EvalMetricSummary& s, const std::string& n) { return s.name() < n; });
  if (it == summaries->end() || it->name() != name) {
    v1::EvalMetricSummary added;
    added.set_name(name);
    added.set_best(value);
    added.set_best_step(step);
    const int at = static_cast<int>(it - summaries->begin());
    *summaries->Add() = std::move(added);
    // Move the new entry from the end to its place in name order.
    for (int i = summaries->size() - 1; i > at; --i) summaries->SwapElements(i, i - 1);
    it = summaries->begin() + at;
  } else if (LowerIsBetter(name) ? value < it->best() : value > it->best()) {
    it->set_best(value);
    it->set_best_step(step);
  }
  it->set_latest(value);
  it->set_latest_step(step);
}

}  // namespace

bool LowerIsBetter(const std::string& name) { return name == kEvalLossMetric; }

bool HasEvaluation(const v1::JobProgress& progress) {
  return !std::isnan(progress.eval_loss()) || !progress.eval_metrics().empty();
}

void RecordEvaluation(const v1::JobProgress& progress,
                      google::protobuf::RepeatedPtrField<v1::EvalMetricSummary>* summaries) {
  if (!HasEvaluation(progress)) return;
  Record(kEvalLossMetric, progress.eval_loss(), progress.eval_step(), summaries);
  for (const auto& [name, value] : progress.eval_metrics()) {
    Record(name, value, progress.eval_step(), summaries);
  }
}

}  // namespace strata
