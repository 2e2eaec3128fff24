// See placement.h.
#include "services/coordinator/placement.h"

#include <algorithm>

namespace strata {
namespace {

bool LabelsMatch(const v1::WorkerInfo* info, const v1::Resources& r) {
  for (const auto& [key, value] : r.node_selector()) {
    if (info == nullptr) return false;
    auto it = info->labels().find(key);
    if (it == info->labels().end() || it->second != value) return false;
  }
  return true;
}

bool Fits(const v1::Resources& r, const FreeCapacity& f) {
  return LabelsMatch(f.info, r) && f.cores >= r.cores_per_rank() &&
         f.memory >= r.memory_bytes_per_rank() && f.nvme >= r.nvme_bytes_per_rank() &&
         static_cast<int>(f.gpus.size()) >= r.gpus_per_rank();
}

}  // namespace

FreeCapacity FullCapacity(const v1::WorkerInfo& worker) {
  FreeCapacity f;
  f.worker_id = worker.worker_id();
  f.info = &worker;
  f.cores = worker.capacity().cores();
  f.memory = worker.capacity().memory_bytes();
  for (const v1::NvmePath& p : worker.capacity().nvme_paths()) f.nvme += p.capacity_bytes();
  for (const v1::GpuInfo& g : worker.capacity().gpus()) f.gpus.push_back(g.index());
  return f;
}

void Reserve(const v1::Resources& r, const v1::RankPlacement& placement, FreeCapacity* f) {
  f->cores -= r.cores_per_rank();
  f->memory -= r.memory_bytes_per_rank();
  f->nvme -= r.nvme_bytes_per_rank();
  for (int g : placement.gpu_indices()) {
    f->gpus.erase(std::remove(f->gpus.begin(), f->gpus.end(), g), f->gpus.end());
  }
}

std::optional<std::vector<v1::RankPlacement>> PlaceGang(const v1::Resources& r,
                                                        std::vector<FreeCapacity>* free) {
  std::vector<FreeCapacity> trial = *free;
  std::vector<v1::RankPlacement> placements;
  for (int k = 0; k < std::max(1, r.ranks()); ++k) {
    auto it =
        std::find_if(trial.begin(), trial.end(), [&](const FreeCapacity& f) { return Fits(r, f); });
    if (it == trial.end()) return std::nullopt;
    v1::RankPlacement p;
    p.set_rank(k);
    p.set_worker_id(it->worker_id);
    for (int g = 0; g < r.gpus_per_rank(); ++g) p.add_gpu_indices(it->gpus[g]);
    Reserve(r, p, &*it);
    placements.push_back(std::move(p));
  }
  *free = std::move(trial);
  return placements;
}

}  // namespace strata
