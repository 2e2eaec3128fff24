// Host-callable entry points of the nvcc-compiled CUDA code in this folder. This header is
// plain C++ (no CUDA headers) so gcc-compiled code can include it; results are cudaError_t
// values as int (0 = success) and cuda_runtime.cc turns them into absl::Status.
#ifndef STRATA_RUNTIME_CUDA_VECTOR_ADD_KERNEL_H_
#define STRATA_RUNTIME_CUDA_VECTOR_ADD_KERNEL_H_

#include <cstdint>

namespace strata::cuda_internal {

// cudaGetDeviceCount.
int GetDeviceCount(int* count);

// Name, total memory and UUID (as 32 hex digits) of device `index`.
int GetDeviceInfo(int index, char* name, int name_size, int64_t* memory_bytes, char* uuid_hex);

// cudaHostRegister(ptr, bytes, cudaHostRegisterDefault) / cudaHostUnregister(ptr).
int HostRegister(void* ptr, int64_t bytes);
int HostUnregister(void* ptr);

// cudaGetErrorName + cudaGetErrorString of `code`, as "cudaErrorX: text".
const char* ErrorText(int code);

// out[i] = a[i] + b[i] for i < n on the current device, with host input and output:
// allocates device buffers, copies in, launches vector_add_forward_kernel, copies out, frees.
// On failure `failed_expr` names the CUDA call that failed.
int VectorAddHost(float* out, const float* a, const float* b, int64_t n, const char** failed_expr);

}  // namespace strata::cuda_internal

#endif  // STRATA_RUNTIME_CUDA_VECTOR_ADD_KERNEL_H_
