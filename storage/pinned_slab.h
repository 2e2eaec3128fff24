// Pinned host memory for the offload pipeline: one large anonymous mapping (2 MiB huge pages
// when the kernel has them), locked in RAM within RLIMIT_MEMLOCK, carved into fixed-size slots
// and registered once with the I/O engine (in pieces of at most 1 GiB) and, in CUDA builds with
// a GPU, with cudaHostRegister. Memory is never pinned per tensor. Pinned and in-use bytes are
// observable.
#ifndef STRATA_STORAGE_PINNED_SLAB_H_
#define STRATA_STORAGE_PINNED_SLAB_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/io/io_engine.h"

namespace strata {

class PinnedSlab {
 public:
  struct Options {
    int64_t slot_bytes = 4 << 20;  // Rounded up to 4096.
    int slots = 8;
    bool lock = true;            // mlock; fails clearly when RLIMIT_MEMLOCK is too small.
    bool huge_pages = true;      // Try MAP_HUGETLB, then transparent huge pages.
    IoEngine* engine = nullptr;  // When set, the slab is registered for fixed-buffer I/O.
    // In CUDA builds with a usable GPU, also cudaHostRegister the slab (pinned for DMA).
    bool cuda_register = true;
  };

  static absl::StatusOr<std::unique_ptr<PinnedSlab>> Create(const Options& options);
  ~PinnedSlab();
  PinnedSlab(const PinnedSlab&) = delete;
  PinnedSlab& operator=(const PinnedSlab&) = delete;

  // A free slot, or kUnavailable when all are in use.
  absl::StatusOr<int> Acquire();
  void Release(int slot);
  char* slot(int index) { return base_ + static_cast<int64_t>(index) * slot_bytes_; }
  int64_t slot_bytes() const { return slot_bytes_; }
  int slots() const { return static_cast<int>(in_use_.size()); }

  int64_t pinned_bytes() const { return locked_ ? mapped_bytes_ : 0; }
  int64_t in_use_bytes() const;
  bool huge_pages() const { return huge_; }
  bool registered() const { return registered_; }
  bool cuda_registered() const { return cuda_registered_; }

 private:
  PinnedSlab() = default;
  char* base_ = nullptr;
  int64_t mapped_bytes_ = 0;
  int64_t slot_bytes_ = 0;
  bool locked_ = false;
  bool huge_ = false;
  bool registered_ = false;
  bool cuda_registered_ = false;
  std::vector<bool> in_use_;
};

// RLIMIT_MEMLOCK's soft limit in bytes (-1 when unlimited).
int64_t MemlockLimitBytes();

}  // namespace strata

#endif  // STRATA_STORAGE_PINNED_SLAB_H_
