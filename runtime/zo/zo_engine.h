// ZoEngine: where a zeroth-order step's arithmetic runs over the weights. Two implementations
// give the same bits: InMemoryZo (runtime/zo/in_memory_zo.h, the model's arena) and OffloadedZo
// (runtime/offload/offloaded_zo.h, blocks streamed from NVMe or a pinned host tier). The ZO
// trainer drives either through this interface and never asks which it has.
#ifndef STRATA_RUNTIME_ZO_ZO_ENGINE_H_
#define STRATA_RUNTIME_ZO_ZO_ENGINE_H_

#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/zo/zo_optimizer.h"

namespace strata::zo {

class ZoEngine {
 public:
  virtual ~ZoEngine() = default;
  // One step on (tokens, targets) of shape (B, T); `step` is 1-based. The update may stay
  // pending (fused into the next step) until Flush.
  virtual absl::StatusOr<ZoStepRecord> Step(absl::Span<const int32_t> tokens,
                                            absl::Span<const int32_t> targets, int B, int T,
                                            int64_t step, double lr) = 0;
  // Applies a logged step (resume, replay); no update may be pending.
  virtual absl::Status Replay(const ZoStepRecord& record) = 0;
  // Applies the pending update everywhere the weights live.
  virtual absl::Status Flush() = 0;
  // The loss at the current weights (pending update applied first).
  virtual absl::StatusOr<float> Loss(absl::Span<const int32_t> tokens,
                                     absl::Span<const int32_t> targets, int B, int T) = 0;
  // The per-tensor arithmetic and its state (Sparse-MeZO thresholds, moments, counters) of an
  // engine over the model's own weights; null for one that trains something else (adapters).
  virtual ZoOptimizer* arithmetic() = 0;
  // Block weights for an export that keeps them out of the model's arena (null: the arena holds
  // them). No update may be pending.
  virtual std::function<absl::StatusOr<const float*>(int layer)> block_source() { return nullptr; }
  virtual int64_t bytes_read() const { return 0; }
  virtual int64_t bytes_written() const { return 0; }
};

}  // namespace strata::zo

#endif  // STRATA_RUNTIME_ZO_ZO_ENGINE_H_
