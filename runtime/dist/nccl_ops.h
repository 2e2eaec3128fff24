// Plain C++ entry points into NCCL and the CUDA runtime for the NCCL communicator (compiled by
// nvcc in the CUDA build), so host code needs no CUDA headers. Every function returns 0 on
// success, a cudaError_t value, or kNcclErrorBase + an ncclResult_t; ErrorString names it.
// Buffers are device memory.
#ifndef STRATA_RUNTIME_DIST_NCCL_OPS_H_
#define STRATA_RUNTIME_DIST_NCCL_OPS_H_

#include <cstddef>

namespace strata::nccl {

constexpr int kNcclErrorBase = 100000;
constexpr int kUniqueIdBytes = 128;  // sizeof(ncclUniqueId).
const char* ErrorString(int code);

int GetUniqueId(char id[kUniqueIdBytes]);
// Binds `device`, creates a stream and joins communicator `id` as `rank` of `size`.
int Init(const char id[kUniqueIdBytes], int size, int rank, int device, void** comm, void** stream);
int Destroy(void* comm, void* stream);
int Abort(void* comm);
int AllReduceSum(void* comm, void* stream, float* data, size_t n);
int ReduceScatterSum(void* comm, void* stream, const float* in, float* out, size_t n_out);
int AllGather(void* comm, void* stream, const float* in, float* out, size_t n_in);
int Broadcast(void* comm, void* stream, float* data, size_t n, int root);
int Synchronize(void* stream);
// Device memory and copies (the barrier's scratch float; tests).
int Malloc(float** out, size_t n);
int Free(float* p);
int CopyToDevice(float* dst, const float* src, size_t n);
int CopyToHost(float* dst, const float* src, size_t n);
int DeviceCount(int* count);

}  // namespace strata::nccl

#endif  // STRATA_RUNTIME_DIST_NCCL_OPS_H_
