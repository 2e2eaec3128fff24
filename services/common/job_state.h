// Facts about the job lifecycle (proto/strata/v1/job.proto: JobState) that the coordinator and
// the CLI both need, in one place, and the display names of the API's enum values.
#ifndef STRATA_SERVICES_COMMON_JOB_STATE_H_
#define STRATA_SERVICES_COMMON_JOB_STATE_H_

#include <string>

#include "absl/strings/string_view.h"
#include "proto/strata/v1/job.pb.h"

namespace strata {

// COMPLETED, CANCELED or ERROR: the job will not change again.
bool IsTerminal(v1::JobState state);

// "QUEUED", "RUNNING", ... (the enum name without its prefix).
std::string StateName(v1::JobState state);

// A proto enum value's name without its prefix: ("LOG_LEVEL_WARNING", "LOG_LEVEL_") -> "WARNING".
std::string EnumSuffix(const std::string& name, absl::string_view prefix);

}  // namespace strata

#endif  // STRATA_SERVICES_COMMON_JOB_STATE_H_
