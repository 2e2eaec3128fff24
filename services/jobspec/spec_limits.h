// Size bounds of a JobSpec, so that no submission can grow the coordinator's store, its List
// replies or a worker's StartRank without limit. Checked first by NormalizeJobSpec; the numbers
// are in docs/config.md ("Limits").
#ifndef STRATA_SERVICES_JOBSPEC_SPEC_LIMITS_H_
#define STRATA_SERVICES_JOBSPEC_SPEC_LIMITS_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "proto/strata/v1/job.pb.h"

namespace strata {

inline constexpr size_t kMaxSpecBytes = 512 * 1024;        // The serialized spec.
inline constexpr size_t kMaxConfigJsonBytes = 256 * 1024;  // model.config_json.
inline constexpr int kMaxLabels = 32;
inline constexpr size_t kMaxLabelKeyBytes = 63;
inline constexpr size_t kMaxLabelValueBytes = 256;
inline constexpr int kMaxDataPaths = 256;  // train_paths, eval_paths each.
inline constexpr int64_t kMaxSteps = 1'000'000'000;
inline constexpr int64_t kMaxCoresPerRank = 4096;

// INVALID_ARGUMENT naming the field (`spec.labels`, `spec.model.config_json`, ...) when a
// bound is exceeded.
absl::Status CheckSpecLimits(const v1::JobSpec& spec);

}  // namespace strata

#endif  // STRATA_SERVICES_JOBSPEC_SPEC_LIMITS_H_
