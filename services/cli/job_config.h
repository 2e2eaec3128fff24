// Job config files: YAML whose keys are JobSpec's field names (docs/config.md), plus
// `key.path=value` overrides, parsed into a v1::JobSpec. Errors name the file and line (YAML
// syntax) or the field (unknown key, wrong type), so a bad config never reaches the coordinator.
#ifndef STRATA_SERVICES_CLI_JOB_CONFIG_H_
#define STRATA_SERVICES_CLI_JOB_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/strata/v1/job.pb.h"

namespace strata {

// `yaml` is the file's text and `name` its path for messages. Each override is
// "dotted.key=value" (the value read as a YAML scalar); it replaces or adds that key.
absl::StatusOr<v1::JobSpec> ParseJobConfig(const std::string& yaml, const std::string& name,
                                           const std::vector<std::string>& overrides);

absl::StatusOr<v1::JobSpec> LoadJobConfig(const std::string& path,
                                          const std::vector<std::string>& overrides);

// Task files (docs/tasks.md): YAML whose keys are TaskSpec's field names, the same way.
absl::StatusOr<v1::TaskSpec> ParseTaskConfig(const std::string& yaml, const std::string& name,
                                             const std::vector<std::string>& overrides);
absl::StatusOr<v1::TaskSpec> LoadTaskConfig(const std::string& path,
                                            const std::vector<std::string>& overrides);

}  // namespace strata

#endif  // STRATA_SERVICES_CLI_JOB_CONFIG_H_
