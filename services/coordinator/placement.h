// Gang placement: all ranks of a job on the free capacity of live workers, or none. First fit
// over workers in the given order (id order), several ranks per worker when they fit; each rank
// needs its cores, memory, NVMe bytes and whole GPUs on one worker that carries every
// node_selector label.
#ifndef STRATA_SERVICES_COORDINATOR_PLACEMENT_H_
#define STRATA_SERVICES_COORDINATOR_PLACEMENT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "proto/strata/v1/job.pb.h"
#include "proto/strata/v1/worker_service.pb.h"

namespace strata {

// What a worker still has free.
struct FreeCapacity {
  std::string worker_id;
  const v1::WorkerInfo* info = nullptr;  // For labels.
  int64_t cores = 0, memory = 0, nvme = 0;
  std::vector<int> gpus;  // Free GPU indices.
};

// Free capacity of a worker before any rank is placed.
FreeCapacity FullCapacity(const v1::WorkerInfo& worker);
// Takes what `placement` of a job with `resources` holds out of `free`.
void Reserve(const v1::Resources& resources, const v1::RankPlacement& placement,
             FreeCapacity* free);

// Placements for every rank (and `free` reduced by them), or nullopt (and `free` unchanged).
std::optional<std::vector<v1::RankPlacement>> PlaceGang(const v1::Resources& resources,
                                                        std::vector<FreeCapacity>* free);

}  // namespace strata

#endif  // STRATA_SERVICES_COORDINATOR_PLACEMENT_H_
