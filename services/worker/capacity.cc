// See capacity.h.
#include "services/worker/capacity.h"

#include <fcntl.h>
#include <liburing.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/base/errno_status.h"
#include "runtime/cuda/cuda_runtime.h"

namespace strata {
namespace {

int UsableCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  return static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
}

bool IoUringUsable() {
  io_uring ring;
  if (io_uring_queue_init(2, &ring, 0) != 0) return false;
  io_uring_queue_exit(&ring);
  return true;
}

// Whether an O_DIRECT open works in `dir` (tmpfs and some overlay filesystems refuse it).
bool DirectIoWorks(const std::string& dir) {
  std::string path = absl::StrCat(dir, "/.strata-direct-io-XXXXXX");
  const int fd = mkostemp(path.data(), O_DIRECT | O_CLOEXEC);
  if (fd < 0) return false;
  close(fd);
  unlink(path.c_str());
  return true;
}

struct Space {
  int64_t free_bytes = 0;  // Available to unprivileged writers (f_bavail).
  int64_t size_bytes = 0;  // The whole file system (f_blocks).
};

absl::StatusOr<Space> SpaceOf(const std::string& dir) {
  struct statvfs fs;
  if (statvfs(dir.c_str(), &fs) != 0) return ErrnoStatus(errno, absl::StrCat("statvfs ", dir));
  return Space{static_cast<int64_t>(fs.f_bavail) * static_cast<int64_t>(fs.f_frsize),
               static_cast<int64_t>(fs.f_blocks) * static_cast<int64_t>(fs.f_frsize)};
}

absl::StatusOr<int64_t> FreeBytes(const std::string& dir) {
  absl::StatusOr<Space> space = SpaceOf(dir);
  if (!space.ok()) return space.status();
  return space->free_bytes;
}

}  // namespace

absl::StatusOr<v1::WorkerCapacity> DetectCapacity(const CapacityOptions& options) {
  v1::WorkerCapacity capacity;
  capacity.set_cores(options.cores > 0 ? options.cores : UsableCores());
  capacity.set_memory_bytes(options.memory_bytes > 0
                                ? options.memory_bytes
                                : static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) *
                                      static_cast<int64_t>(sysconf(_SC_PAGESIZE)));
  for (const CudaDeviceInfo& device : CudaDevices()) {
    v1::GpuInfo* gpu = capacity.add_gpus();
    gpu->set_index(device.index);
    gpu->set_name(device.name);
    gpu->set_memory_bytes(device.memory_bytes);
    gpu->set_uuid(device.uuid);
  }
  for (const std::string& dir : options.nvme_paths) {
    if (dir.empty() || dir[0] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("NVMe path must be absolute, got \"", dir, "\""));
    }
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("mkdir ", dir));
    }
    absl::StatusOr<int64_t> free_bytes = FreeBytes(dir);
    if (!free_bytes.ok()) return free_bytes.status();
    v1::NvmePath* path = capacity.add_nvme_paths();
    path->set_path(dir);
    path->set_capacity_bytes(*free_bytes);
    path->set_free_bytes(*free_bytes);
    path->set_direct_io(DirectIoWorks(dir));
  }
  capacity.set_io_uring(IoUringUsable());
  return capacity;
}

void RefreshFreeBytes(v1::WorkerCapacity* capacity) {
  for (v1::NvmePath& path : *capacity->mutable_nvme_paths()) {
    if (absl::StatusOr<int64_t> free_bytes = FreeBytes(path.path()); free_bytes.ok()) {
      path.set_free_bytes(*free_bytes);
    }
  }
}

void CollectNvmeMetrics(const std::vector<std::string>& nvme_paths, MetricsWriter* out) {
  std::vector<std::pair<std::string, Space>> spaces;
  for (const std::string& dir : nvme_paths) {
    if (absl::StatusOr<Space> space = SpaceOf(dir); space.ok()) spaces.emplace_back(dir, *space);
  }
  // One family after the other: the text format wants each family's samples together.
  for (const auto& [dir, space] : spaces) {
    out->Gauge("strata_worker_nvme_free_bytes",
               "Bytes free to unprivileged writers on the file system of an NVMe path.",
               {{"path", dir}}, static_cast<double>(space.free_bytes));
  }
  for (const auto& [dir, space] : spaces) {
    out->Gauge("strata_worker_nvme_capacity_bytes", "Size of the file system of an NVMe path.",
               {{"path", dir}}, static_cast<double>(space.size_bytes));
  }
}

}  // namespace strata
