// BuildRunConfig: a JobSpec and one rank's placement -> the RunConfig that rank runs. The spec
// goes through NormalizeJobSpec (the one validator) and then maps field for field; the only
// errors added here are about the placement (no NVMe paths on the worker, no way for the ranks
// to meet). The coordinator builds one for a probe placement at submit, so a spec that cannot
// run is refused before it is queued; the worker builds the real one; strata-train's local
// flags build one the same way.
#ifndef STRATA_SERVICES_JOBSPEC_RUN_CONFIG_BUILDER_H_
#define STRATA_SERVICES_JOBSPEC_RUN_CONFIG_BUILDER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/strata/v1/job.pb.h"
#include "proto/strata/v1/run_config.pb.h"

namespace strata {

// Where one rank of one attempt runs.
struct RankSite {
  std::string job_id;
  int attempt = 0;
  int rank = 0;
  int world_size = 1;
  // The rank's directory on its worker: its checkpoints go under job_dir/checkpoints unless the
  // spec names checkpoint.path.
  std::string job_dir;
  std::vector<std::string> nvme_dirs;  // The rank's directories on the worker's NVMe paths.
  std::vector<int> gpu_indices;        // GPUs the coordinator placed the rank on.
  std::string replay_log;              // The coordinator's step log to replay, if any.
  // How multi-rank runs meet (coordinator or dir, prefix, host, TLS, collective timeout); when
  // neither coordinator nor dir is set, files under checkpoint.path/rendezvous.
  v1::RunRendezvous rendezvous;
};

// The placement the coordinator validates a spec against at submit: one rank on a worker with
// NVMe, meeting through the coordinator.
RankSite ProbeSite(const v1::JobSpec& spec);

absl::StatusOr<v1::RunConfig> BuildRunConfig(const v1::JobSpec& spec, const RankSite& site);

}  // namespace strata

#endif  // STRATA_SERVICES_JOBSPEC_RUN_CONFIG_BUILDER_H_
