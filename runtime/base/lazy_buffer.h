// A zero-filled float buffer whose pages are committed only when first written (an anonymous
// mmap without a swap reservation, so the kernel's overcommit heuristic does not refuse a buffer
// larger than memory). Used where an arena-layout buffer is needed but only some of it is
// touched — e.g. the arena of a model whose blocks live on NVMe (a 7B model's 27 GB arena on a
// 24 GB machine), or the perturbed copies of its resident tensors, addressed with arena offsets,
// whose block region stays untouched and costs no memory. Touching more of it than there is
// memory ends in the OOM killer, not std::bad_alloc.
#ifndef STRATA_RUNTIME_BASE_LAZY_BUFFER_H_
#define STRATA_RUNTIME_BASE_LAZY_BUFFER_H_

#include <sys/mman.h>

#include <cstdint>
#include <new>

#include "absl/types/span.h"

namespace strata {

class LazyBuffer {
 public:
  LazyBuffer() = default;
  explicit LazyBuffer(int64_t floats) : size_(floats) {
    if (floats <= 0) return;
    void* p = mmap(nullptr, Bytes(), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    data_ = static_cast<float*>(p);
  }
  LazyBuffer(LazyBuffer&& o) noexcept : data_(o.data_), size_(o.size_) {
    o.data_ = nullptr;
    o.size_ = 0;
  }
  LazyBuffer& operator=(LazyBuffer&& o) noexcept {
    if (this != &o) {
      Release();
      data_ = o.data_;
      size_ = o.size_;
      o.data_ = nullptr;
      o.size_ = 0;
    }
    return *this;
  }
  LazyBuffer(const LazyBuffer&) = delete;
  LazyBuffer& operator=(const LazyBuffer&) = delete;
  ~LazyBuffer() { Release(); }

  float* data() { return data_; }
  const float* data() const { return data_; }
  int64_t size() const { return size_; }
  absl::Span<float> span() { return absl::MakeSpan(data_, size_); }
  absl::Span<const float> span() const { return absl::MakeConstSpan(data_, size_); }
  // Returns the whole pages inside floats [begin, end) to the system; they read as zeros after.
  void Discard(int64_t begin, int64_t end) {
    const uintptr_t page = 4096;
    const uintptr_t lo = (reinterpret_cast<uintptr_t>(data_ + begin) + page - 1) & ~(page - 1);
    const uintptr_t hi = reinterpret_cast<uintptr_t>(data_ + end) & ~(page - 1);
    if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
  }

 private:
  size_t Bytes() const { return static_cast<size_t>(size_) * sizeof(float); }
  void Release() {
    if (data_ != nullptr) munmap(data_, Bytes());
    data_ = nullptr;
  }
  float* data_ = nullptr;
  int64_t size_ = 0;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_BASE_LAZY_BUFFER_H_
