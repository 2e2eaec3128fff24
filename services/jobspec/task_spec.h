// The rules of a JobSpec's `task` section (docs/tasks.md): a preset expanded (the user's own
// fields win), every default applied, and each field honoured or refused by name
// ("spec.task.labels: ..."). Called by NormalizeJobSpec; normalizing twice changes nothing.
// A federated job's task is its definition alone (each client brings its own examples): paths,
// sample sizes, the sampling seed and demonstrations are refused, a preset's sample sizes
// dropped, and generation tasks refused.
#ifndef STRATA_SERVICES_JOBSPEC_TASK_SPEC_H_
#define STRATA_SERVICES_JOBSPEC_TASK_SPEC_H_

#include "absl/status/status.h"
#include "proto/strata/v1/job.pb.h"

namespace strata {

// Normalizes spec.task (nothing without one); needs spec.training.seed and spec.optimizer
// already resolved, and spec.federated set (or not) as submitted.
absl::Status NormalizeTask(v1::JobSpec& spec);

}  // namespace strata

#endif  // STRATA_SERVICES_JOBSPEC_TASK_SPEC_H_
