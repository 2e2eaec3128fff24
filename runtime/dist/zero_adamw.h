// Data-parallel AdamW across the ranks of a Communicator with ZeRO's partitioning:
//   stage 0: gradients all-reduced; every rank keeps the full optimizer state and updates every
//            parameter (plain data parallelism);
//   stage 1: gradients all-reduced; rank r keeps m and v for, and updates, only its partition
//            [r P, (r + 1) P) of the parameter arena (P = ceil(N / ranks)); the updated
//            partitions are all-gathered.
// (Stages 2 and 3, where gradients are partitioned too, are Zero3: each block's gradient is
// reduced as the backward produces it, so the whole gradient never exists on a rank.)
// The arithmetic is the same in both stages (the same collective sums, elementwise AdamW, the
// global gradient norm summed partition by partition in rank order), so stages 0 and 1 give
// bitwise the same parameters. Gradients are averaged over ranks (sum / ranks), matching one
// process training on the union of the ranks' batches.
#ifndef STRATA_RUNTIME_DIST_ZERO_ADAMW_H_
#define STRATA_RUNTIME_DIST_ZERO_ADAMW_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/base/aligned_buffer.h"
#include "runtime/dist/communicator.h"
#include "runtime/model/param_layout.h"
#include "runtime/optim/adamw.h"
#include "storage/io/io_engine.h"
#include "storage/pinned_slab.h"
#include "storage/tensor_store.h"

namespace strata {

class ZeroAdamW {
 public:
  struct Options {
    int stage = 0;  // 0 or 1.
    AdamWConfig adam;
    float grad_clip = 0;  // Global gradient-norm clip; 0 disables.
    // Optimizer state on NVMe (ZeRO-Infinity): m and v of this rank's range live in files under
    // these directories, in sub-groups of `subgroup_elements`, streamed through three pinned
    // slots: while sub-group i updates, i+1 is being read and i-1 written. Empty: in memory.
    std::vector<std::string> state_nvme_paths;
    int64_t subgroup_elements = int64_t{4} << 20;
    IoEngineOptions io;
  };

  // `layout` and `comm` must outlive the optimizer; a null `comm` is one rank.
  static absl::StatusOr<std::unique_ptr<ZeroAdamW>> Create(const ParamLayout& layout,
                                                           Communicator* comm, Options options);

  // One step: `grads` is this rank's gradient of the whole arena (overwritten: averaged, and
  // clipped where this rank needs it); `params` ends identical on every rank. Returns the
  // global gradient norm before clipping.
  absl::StatusOr<double> Step(absl::Span<float> params, absl::Span<float> grads, float lr);

  // Bytes of optimizer state (m and v) this rank holds in memory: 8 N at stage 0, 8 P at stage
  // 1; with NVMe state only the three slots.
  int64_t OptimizerStateBytes() const;
  bool state_offloaded() const { return store_ != nullptr; }
  // NVMe-resident state to and from a plain file (checkpoints), one sub-group at a time through
  // a slot: m then v of each sub-group, in order.
  absl::Status ExportState(const std::string& path);
  absl::Status ImportState(const std::string& path);
  int64_t state_bytes_read() const { return bytes_read_; }
  int64_t state_bytes_written() const { return bytes_written_; }
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
  // AdamW over arena elements [begin, end) with per-tensor decay; element i's state at
  // m[i - state0], v[i - state0].
  void UpdateRange(float* params, const float* grads, int64_t begin, int64_t end, float lr,
                   float* m, float* v, int64_t state0);
  // The same over [begin, end) with the state streamed from NVMe sub-group by sub-group.
  absl::Status UpdateOffloaded(float* params, const float* grads, int64_t begin, int64_t end,
                               float lr);
  absl::Status InitOffload(int64_t begin, int64_t end);

  const ParamLayout& layout_;
  Communicator* comm_;
  const Options options_;
  int64_t part_ = 0, begin_ = 0, end_ = 0;  // Partition size and this rank's [begin, end).
  AlignedBuffer m_, v_;
  // Stage 1, reused every step: the padded whole arena (the gather's output) and
  // this rank's padded partition.
  AlignedBuffer scratch_, partition_;
  int64_t step_ = 0;
  std::unique_ptr<IoEngine> engine_;
  std::unique_ptr<TensorStore> store_;
  std::unique_ptr<PinnedSlab> slab_;
  int64_t bytes_read_ = 0, bytes_written_ = 0;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_DIST_ZERO_ADAMW_H_
