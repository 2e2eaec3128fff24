// Detects what a worker can offer ranks: cores it may run on, physical memory, GPUs, and the
// NVMe directories the operator named (free space, whether O_DIRECT works there), plus whether
// io_uring is usable in this process (seccomp and sysctl can forbid it). Also reports the NVMe
// directories' space on /metrics, read at scrape time.
#ifndef STRATA_SERVICES_WORKER_CAPACITY_H_
#define STRATA_SERVICES_WORKER_CAPACITY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/strata/v1/common.pb.h"
#include "services/common/metrics.h"

namespace strata {

struct CapacityOptions {
  std::vector<std::string> nvme_paths;  // Absolute directories; created if missing.
  int cores = 0;                        // 0: the cores this process may run on.
  int64_t memory_bytes = 0;             // 0: physical memory.
};

// Fails with the offending path when an NVMe directory cannot be created or inspected.
absl::StatusOr<v1::WorkerCapacity> DetectCapacity(const CapacityOptions& options);

// Just the free bytes of each NVMe path in `capacity`, refreshed (for heartbeats).
void RefreshFreeBytes(v1::WorkerCapacity* capacity);

// Writes, for each of `nvme_paths`, the free bytes (available to unprivileged writers) and the
// size of the file system holding it, read with statvfs now:
// strata_worker_nvme_free_bytes{path} and strata_worker_nvme_capacity_bytes{path}. A directory
// that cannot be inspected (removed, unmounted, no permission) has no series in this scrape.
void CollectNvmeMetrics(const std::vector<std::string>& nvme_paths, MetricsWriter* out);

}  // namespace strata

#endif  // STRATA_SERVICES_WORKER_CAPACITY_H_
