// A job's evaluations summarized per metric (Job.eval_metrics): each evaluation rank 0 reports
// (JobProgress.eval_loss as the metric "loss", and every task metric of
// JobProgress.eval_metrics) updates its metric's latest value and step, and its best. The
// held-out loss is better lower; every task metric (accuracy, f1, exact_match, token_f1, ...)
// is better higher; on a tie the earlier best stays. NaN values are no evaluation of their metric.
// Summaries stay sorted by name and are never reset: a job's restarts keep its best so far.
#ifndef STRATA_SERVICES_COORDINATOR_EVAL_SUMMARY_H_
#define STRATA_SERVICES_COORDINATOR_EVAL_SUMMARY_H_

#include <string>

#include "google/protobuf/repeated_ptr_field.h"
#include "proto/strata/v1/job.pb.h"

namespace strata {

// The name the held-out loss has among a job's evaluation metrics.
inline constexpr char kEvalLossMetric[] = "loss";

// Whether a lower value of metric `name` is the better one (only the held-out loss).
bool LowerIsBetter(const std::string& name);

// Whether `progress` carries an evaluation: an eval loss (not NaN) or task metrics.
bool HasEvaluation(const v1::JobProgress& progress);

// Folds the evaluation `progress` carries (at progress.eval_step) into `summaries`; nothing
// when it carries none. Reporting the same evaluation again changes nothing.
void RecordEvaluation(const v1::JobProgress& progress,
                      google::protobuf::RepeatedPtrField<v1::EvalMetricSummary>* summaries);

}  // namespace strata

#endif  // STRATA_SERVICES_COORDINATOR_EVAL_SUMMARY_H_
