// See job_state.h.
#include "services/common/job_state.h"

#include "absl/strings/match.h"

namespace strata {

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_COMPLETED || state == v1::JOB_STATE_CANCELED ||
         state == v1::JOB_STATE_ERROR;
}

std::string StateName(v1::JobState state) {
  const std::string name = v1::JobState_Name(state);
  return absl::StartsWith(name, "JOB_STATE_") ? name.substr(10) : name;
}

}  // namespace strata
