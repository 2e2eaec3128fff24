// What the coordinator accepts as a JobSpec: field-level validation (every error names the
// field, e.g. "spec.data.batch_size: must be positive") and the documented defaults filled in,
// so a stored job carries the values it actually runs with.
#ifndef STRATA_SERVICES_COORDINATOR_JOB_SPEC_H_
#define STRATA_SERVICES_COORDINATOR_JOB_SPEC_H_

#include "absl/status/statusor.h"
#include "proto/strata/v1/job.pb.h"

namespace strata {

// The spec with defaults applied, or INVALID_ARGUMENT naming the first bad field.
absl::StatusOr<v1::JobSpec> NormalizeJobSpec(const v1::JobSpec& spec);

}  // namespace strata

#endif  // STRATA_SERVICES_COORDINATOR_JOB_SPEC_H_
