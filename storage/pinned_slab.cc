// See pinned_slab.h.
#include "storage/pinned_slab.h"

#include <sys/mman.h>
#include <sys/resource.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "runtime/base/errno_status.h"
#include "runtime/cuda/cuda_runtime.h"

namespace strata {

int64_t MemlockLimitBytes() {
  rlimit limit;
  if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0) return 0;
  return limit.rlim_cur == RLIM_INFINITY ? -1 : static_cast<int64_t>(limit.rlim_cur);
}

absl::StatusOr<std::unique_ptr<PinnedSlab>> PinnedSlab::Create(const Options& options) {
  if (options.slots < 1 || options.slot_bytes < 1) {
    return absl::InvalidArgumentError("a pinned slab needs at least one non-empty slot");
  }
  std::unique_ptr<PinnedSlab> slab(new PinnedSlab());
  slab->slot_bytes_ = (options.slot_bytes + 4095) / 4096 * 4096;
  const int64_t wanted = slab->slot_bytes_ * options.slots;
  const int64_t huge_unit = int64_t{2} << 20;
  slab->mapped_bytes_ = (wanted + huge_unit - 1) / huge_unit * huge_unit;
  if (options.lock) {
    const int64_t limit = MemlockLimitBytes();
    if (limit >= 0 && limit < slab->mapped_bytes_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("pinning ", slab->mapped_bytes_,
                       " bytes of host memory needs RLIMIT_MEMLOCK >= that; "
                       "the limit is ",
                       limit,
                       " bytes (raise it with `ulimit -l`, LimitMEMLOCK in systemd, "
                       "or the container's memlock ulimit)"));
    }
  }
  void* p = MAP_FAILED;
  if (options.huge_pages) {
    p = mmap(nullptr, slab->mapped_bytes_, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    slab->huge_ = p != MAP_FAILED;
  }
  if (p == MAP_FAILED) {
    p = mmap(nullptr, slab->mapped_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
             0);
    if (p == MAP_FAILED) {
      return ErrnoStatus(errno, absl::StrCat("mmap ", slab->mapped_bytes_, " bytes"));
    }
    if (options.huge_pages) madvise(p, slab->mapped_bytes_, MADV_HUGEPAGE);
  }
  slab->base_ = static_cast<char*>(p);
  if (options.lock) {
    if (mlock(slab->base_, slab->mapped_bytes_) != 0) {
      return ErrnoStatus(errno, absl::StrCat("mlock ", slab->mapped_bytes_, " bytes"));
    }
    slab->locked_ = true;
  }
  slab->in_use_.assign(options.slots, false);
  if (options.engine != nullptr) {
    if (absl::Status s = options.engine->RegisterBuffer(slab->base_, slab->mapped_bytes_);
        !s.ok()) {
      return s;
    }
    slab->registered_ = true;
  }
  if (options.cuda_register && CudaBuilt()) {
    absl::StatusOr<int> devices = CudaDeviceCount();
    if (devices.ok() && *devices > 0) {
      if (absl::Status s = CudaHostRegister(slab->base_, slab->mapped_bytes_); !s.ok()) return s;
      slab->cuda_registered_ = true;
    }
  }
  return slab;
}

PinnedSlab::~PinnedSlab() {
  if (cuda_registered_) CudaHostUnregister(base_).IgnoreError();
  if (base_ != nullptr) {
    if (locked_) munlock(base_, mapped_bytes_);
    munmap(base_, mapped_bytes_);
  }
}

absl::StatusOr<int> PinnedSlab::Acquire() {
  for (size_t i = 0; i < in_use_.size(); ++i) {
    if (!in_use_[i]) {
      in_use_[i] = true;
      return static_cast<int>(i);
    }
  }
  return absl::UnavailableError(absl::StrCat("all ", in_use_.size(), " pinned slots are in use"));
}

void PinnedSlab::Release(int slot) { in_use_[slot] = false; }

int64_t PinnedSlab::in_use_bytes() const {
  int64_t n = 0;
  for (bool b : in_use_) n += b;
  return n * slot_bytes_;
}

}  // namespace strata
