// The rules of a JobSpec's `task` section (docs/tasks.md): a preset expanded (the user's own
// fields win), every default applied, and each field honoured or refused by name
// ("spec.task.labels: ..."). Called by NormalizeJobSpec; normalizing twice changes nothing.
#ifndef STRATA_SERVICES_JOBSPEC_TASK_SPEC_H_
#define STRATA_SERVICES_JOBSPEC_TASK_SPEC_H_

#include "absl/status/status.h"
#include "proto/strata/v1/job.pb.h"

namespace strata {

// Normalizes spec.task (nothing without one); needs spec.training.seed and spec.optimizer
// already resolved.
absl::Status NormalizeTask(v1::JobSpec& spec);

}  // namespace strata

#endif  // STRATA_SERVICES_JOBSPEC_TASK_SPEC_H_
