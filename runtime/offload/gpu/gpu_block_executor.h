// The GPU stage of offloaded ZO: a zo::BlockExecutor that runs each block's deferred update,
// perturbation and both forwards on a CUDA device, fed from the pinned host slots.
//
// Per block: the weights are copied host -> device on a copy stream (double-buffered device
// block buffers, so block l+1's upload overlaps block l's compute); the compute stream waits on
// the upload's event, applies the pending SGD/sign update (the noise regenerated on the device
// with the same Philox + fixed-arithmetic Gaussian as the CPU, compiled without FMA
// contraction, so the updated weights are bitwise the CPU's), and the copy stream returns the
// updated block to the host slot as soon as the update kernel's event fires, while the compute
// stream goes on to perturb the block into two device buffers and run both forward streams
// (cuBLAS sgemm + row kernels). Block returns once the updated weights are back in the slot
// (the offload stream then writes them to NVMe); the forwards keep running. The residual
// streams stay on the device from Begin to End.
//
// The forward's arithmetic differs from the CPU's (summation order of sgemm and reductions),
// so losses agree to a tolerance, not bitwise; the weights after any sequence of recorded
// steps are bitwise equal to a CPU replay of the same step log.
//
// Built only with --config=cuda; otherwise Create reports kUnavailable.
#ifndef STRATA_RUNTIME_OFFLOAD_GPU_GPU_BLOCK_EXECUTOR_H_
#define STRATA_RUNTIME_OFFLOAD_GPU_GPU_BLOCK_EXECUTOR_H_

#include <memory>

#include "absl/status/statusor.h"
#include "runtime/model/param_layout.h"
#include "runtime/zo/zo_optimizer.h"

namespace strata {

struct GpuBlockExecutorOptions {
  int device = 0;  // CUDA device ordinal.
  bool one_sided = false;
  float eps = 1e-3f;
  // Per-tensor Sparse-MeZO thresholds (ZoOptimizer::thresholds(); +inf: no mask).
  std::vector<float> thresholds;
};

// `layout` must outlive the executor.
absl::StatusOr<std::unique_ptr<zo::BlockExecutor>> CreateGpuBlockExecutor(
    const ParamLayout& layout, GpuBlockExecutorOptions options);

}  // namespace strata

#endif  // STRATA_RUNTIME_OFFLOAD_GPU_GPU_BLOCK_EXECUTOR_H_
