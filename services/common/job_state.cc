// See job_state.h.
#include "services/common/job_state.h"

#include "absl/strings/match.h"

namespace strata {

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_COMPLETED || state == v1::JOB_STATE_CANCELED ||
         state == v1::JOB_STATE_ERROR;
}

std::string StateName(v1::JobState state) {
  return EnumSuffix(v1::JobState_Name(state), "JOB_STATE_");
}

std::string EnumSuffix(const std::string& name, absl::string_view prefix) {
  return absl::StartsWith(name, prefix) ? name.substr(prefix.size()) : name;
}

}  // namespace strata
