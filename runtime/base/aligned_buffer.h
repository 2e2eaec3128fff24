// A 64-byte-aligned float buffer that owns its memory (cache-line and AVX-512 aligned). The
// arenas of parameters, gradients, optimizer state and activations are AlignedBuffers.
#ifndef STRATA_RUNTIME_BASE_ALIGNED_BUFFER_H_
#define STRATA_RUNTIME_BASE_ALIGNED_BUFFER_H_

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "absl/types/span.h"

namespace strata {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  // Zero-filled.
  explicit AlignedBuffer(int64_t floats) { Resize(floats); }
  AlignedBuffer(AlignedBuffer&& other) noexcept : data_(other.data_), size_(other.size_) {
    other.data_ = nullptr;
    other.size_ = 0;
  }
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept {
    if (this != &other) {
      std::free(data_);
      data_ = other.data_;
      size_ = other.size_;
      other.data_ = nullptr;
      other.size_ = 0;
    }
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(data_); }

  // Replaces the contents with `floats` zeros. Throws std::bad_alloc when memory runs out.
  void Resize(int64_t floats) {
    std::free(data_);
    data_ = nullptr;
    size_ = 0;
    if (floats <= 0) return;
    const size_t bytes = (static_cast<size_t>(floats) * sizeof(float) + 63) / 64 * 64;
    data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (data_ == nullptr) throw std::bad_alloc();
    std::memset(data_, 0, bytes);
    size_ = floats;
  }

  float* data() { return data_; }
  const float* data() const { return data_; }
  int64_t size() const { return size_; }
  absl::Span<float> span() { return absl::MakeSpan(data_, size_); }
  absl::Span<const float> span() const { return absl::MakeConstSpan(data_, size_); }

 private:
  float* data_ = nullptr;
  int64_t size_ = 0;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_BASE_ALIGNED_BUFFER_H_
