// Strata's window onto CUDA from host code: whether this binary was built with CUDA, how many
// devices are usable, and a vector add that runs on the device. Every CUDA result is turned
// into an absl::Status naming the failed call and its file:line (CudaStatus). In the default
// CPU-only build every function reports kUnavailable ("built without CUDA").
#ifndef STRATA_RUNTIME_CUDA_CUDA_RUNTIME_H_
#define STRATA_RUNTIME_CUDA_CUDA_RUNTIME_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace strata {

// True when the binary was built with `--config=cuda`.
bool CudaBuilt();

// A status for CUDA error `code` from `expr` at file:line. OK when `code` is 0.
absl::Status CudaStatus(int code, const char* expr, const char* file, int line);

// Number of CUDA devices. kUnavailable when built without CUDA or when the driver/runtime
// cannot be initialized (no GPU, driver too old): callers treat that as "no GPU".
absl::StatusOr<int> CudaDeviceCount();

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int64_t memory_bytes = 0;
  std::string uuid;  // "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", as nvidia-smi prints it.
};

// Every visible device; an empty list when there is none or the build has no CUDA.
std::vector<CudaDeviceInfo> CudaDevices();

// Page-locks host memory for the GPU's DMA engines (cudaHostRegister) and undoes it.
absl::Status CudaHostRegister(void* data, int64_t bytes);
absl::Status CudaHostUnregister(void* data);

// out = a + b on device 0. Spans must have equal sizes.
absl::Status CudaVectorAdd(absl::Span<float> out, absl::Span<const float> a,
                           absl::Span<const float> b);

}  // namespace strata

#endif  // STRATA_RUNTIME_CUDA_CUDA_RUNTIME_H_
