// Facts about the job lifecycle (proto/strata/v1/job.proto: JobState) that the coordinator and
// the CLI both need, in one place.
#ifndef STRATA_SERVICES_COMMON_JOB_STATE_H_
#define STRATA_SERVICES_COMMON_JOB_STATE_H_

#include <string>

#include "proto/strata/v1/job.pb.h"

namespace strata {

// COMPLETED, CANCELED or ERROR: the job will not change again.
bool IsTerminal(v1::JobState state);

// "QUEUED", "RUNNING", ... (the enum name without its prefix).
std::string StateName(v1::JobState state);

}  // namespace strata

#endif  // STRATA_SERVICES_COMMON_JOB_STATE_H_
