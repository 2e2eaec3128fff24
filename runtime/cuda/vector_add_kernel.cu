// The CUDA vector add that proves the --config=cuda build path end to end (nvcc, sm_90 + PTX,
// cudart link) and gives the GPU test something real to compare with its CPU reference.
#include <cuda_runtime.h>

#include <cstdio>

#include "runtime/cuda/vector_add_kernel.h"

namespace strata::cuda_internal {
namespace {

// out, a, b: (n,). Grid-stride loop so any grid size covers any n.
__global__ void vector_add_forward_kernel(float* out, const float* a, const float* b, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    out[i] = a[i] + b[i];
  }
}

// Records the first failing call's text and returns its code.
#define STRATA_CUDA_TRY(expr)  \
  do {                         \
    cudaError_t err_ = (expr); \
    if (err_ != cudaSuccess) { \
      *failed_expr = #expr;    \
      status = err_;           \
      goto cleanup;            \
    }                          \
  } while (0)

}  // namespace

int GetDeviceCount(int* count) { return static_cast<int>(cudaGetDeviceCount(count)); }

int GetDeviceInfo(int index, char* name, int name_size, int64_t* memory_bytes, char* uuid_hex) {
  cudaDeviceProp prop;
  const cudaError_t err = cudaGetDeviceProperties(&prop, index);
  if (err != cudaSuccess) return static_cast<int>(err);
  snprintf(name, name_size, "%s", prop.name);
  *memory_bytes = static_cast<int64_t>(prop.totalGlobalMem);
  for (int i = 0; i < 16; ++i) {
    snprintf(uuid_hex + 2 * i, 3, "%02x", static_cast<unsigned char>(prop.uuid.bytes[i]));
  }
  return 0;
}

int HostRegister(void* ptr, int64_t bytes) {
  return static_cast<int>(cudaHostRegister(ptr, static_cast<size_t>(bytes), cudaHostRegisterDefault));
}

int HostUnregister(void* ptr) { return static_cast<int>(cudaHostUnregister(ptr)); }

const char* ErrorText(int code) {
  thread_local char text[512];
  const cudaError_t err = static_cast<cudaError_t>(code);
  snprintf(text, sizeof(text), "%s: %s", cudaGetErrorName(err), cudaGetErrorString(err));
  return text;
}

int VectorAddHost(float* out, const float* a, const float* b, int64_t n, const char** failed_expr) {
  cudaError_t status = cudaSuccess;
  const size_t bytes = static_cast<size_t>(n) * sizeof(float);
  float* d_out = nullptr;
  float* d_a = nullptr;
  float* d_b = nullptr;
  const int threads = 256;
  int blocks = 0;
  STRATA_CUDA_TRY(cudaMalloc(&d_out, bytes));
  STRATA_CUDA_TRY(cudaMalloc(&d_a, bytes));
  STRATA_CUDA_TRY(cudaMalloc(&d_b, bytes));
  STRATA_CUDA_TRY(cudaMemcpy(d_a, a, bytes, cudaMemcpyHostToDevice));
  STRATA_CUDA_TRY(cudaMemcpy(d_b, b, bytes, cudaMemcpyHostToDevice));
  blocks = static_cast<int>((n + threads - 1) / threads);
  if (blocks > 65535) blocks = 65535;
  if (blocks < 1) blocks = 1;
  vector_add_forward_kernel<<<blocks, threads>>>(d_out, d_a, d_b, n);
  STRATA_CUDA_TRY(cudaGetLastError());
  STRATA_CUDA_TRY(cudaMemcpy(out, d_out, bytes, cudaMemcpyDeviceToHost));
cleanup:
  cudaFree(d_out);
  cudaFree(d_a);
  cudaFree(d_b);
  return static_cast<int>(status);
}

}  // namespace strata::cuda_internal
