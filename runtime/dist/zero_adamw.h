// Data-parallel AdamW across the ranks of a Communicator with ZeRO's partitioning:
//   stage 0: gradients all-reduced; every rank keeps the full optimizer state and updates every
//            parameter (plain data parallelism);
//   stage 1: gradients all-reduced; rank r keeps m and v for, and updates, only its partition
//            [r P, (r + 1) P) of the parameter arena (P = ceil(N / ranks)); the updated
//            partitions are all-gathered;
//   stage 2: as stage 1, but gradients are reduce-scattered: each rank only needs its
//            partition's sum.
// The arithmetic is the same in every stage (the same collective sums, elementwise AdamW, the
// global gradient norm summed partition by partition in rank order), so stages 0, 1 and 2 give
// bitwise the same parameters. Gradients are averaged over ranks (sum / ranks), matching one
// process training on the union of the ranks' batches.
#ifndef STRATA_RUNTIME_DIST_ZERO_ADAMW_H_
#define STRATA_RUNTIME_DIST_ZERO_ADAMW_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/base/aligned_buffer.h"
#include "runtime/dist/communicator.h"
#include "runtime/model/param_layout.h"
#include "runtime/optim/adamw.h"

namespace strata {

class ZeroAdamW {
 public:
  struct Options {
    int stage = 0;  // 0, 1 or 2.
    AdamWConfig adam;
    float grad_clip = 0;  // Global gradient-norm clip; 0 disables.
  };

  // `layout` and `comm` must outlive the optimizer.
  static absl::StatusOr<std::unique_ptr<ZeroAdamW>> Create(const ParamLayout& layout,
                                                           Communicator* comm, Options options);

  // One step: `grads` is this rank's gradient of the whole arena (overwritten: averaged, and
  // clipped where this rank needs it); `params` ends identical on every rank. Returns the
  // global gradient norm before clipping.
  absl::StatusOr<double> Step(absl::Span<float> params, absl::Span<float> grads, float lr);

  // Bytes of optimizer state (m and v) this rank holds: 8 N at stage 0, 8 P at stages 1-2.
  int64_t OptimizerStateBytes() const;
  // This rank's optimizer state (full at stage 0, its partition otherwise) and step count, for
  // checkpoints.
  absl::Span<float> m() { return m_.span(); }
  absl::Span<float> v() { return v_.span(); }
  int64_t step() const { return step_; }
  void set_step(int64_t step) { step_ = step; }
  int64_t partition_begin() const { return begin_; }
  int64_t partition_end() const { return end_; }

 private:
  ZeroAdamW(const ParamLayout& layout, Communicator* comm, Options options);
  // AdamW over arena elements [begin, end) with per-tensor decay; state at m/v + (i - state0).
  void UpdateRange(float* params, const float* grads, int64_t begin, int64_t end, float lr,
                   int64_t state0);

  const ParamLayout& layout_;
  Communicator* comm_;
  const Options options_;
  int64_t part_ = 0, begin_ = 0, end_ = 0;  // Partition size and this rank's [begin, end).
  AlignedBuffer m_, v_;
  AlignedBuffer scratch_;  // Padded gather/scatter buffer (stages 1-2).
  int64_t step_ = 0;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_DIST_ZERO_ADAMW_H_
