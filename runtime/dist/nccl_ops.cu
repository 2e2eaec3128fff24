// NCCL and CUDA runtime calls of the NCCL communicator (see nccl_ops.h). Sums are ncclSum over
// fp32, whose reduction order NCCL fixes for a given communicator and size.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>

#include "runtime/dist/nccl_ops.h"

namespace strata::nccl {
namespace {

int Nccl(ncclResult_t r) { return r == ncclSuccess ? 0 : kNcclErrorBase + static_cast<int>(r); }
ncclComm_t C(void* comm) { return static_cast<ncclComm_t>(comm); }
cudaStream_t S(void* stream) { return static_cast<cudaStream_t>(stream); }

}  // namespace

static_assert(sizeof(ncclUniqueId) == kUniqueIdBytes, "ncclUniqueId size changed");

const char* ErrorString(int code) {
  if (code >= kNcclErrorBase) {
    return ncclGetErrorString(static_cast<ncclResult_t>(code - kNcclErrorBase));
  }
  return cudaGetErrorString(static_cast<cudaError_t>(code));
}

int GetUniqueId(char id[kUniqueIdBytes]) {
  ncclUniqueId unique;
  const int r = Nccl(ncclGetUniqueId(&unique));
  if (r == 0) std::memcpy(id, &unique, sizeof(unique));
  return r;
}

int Init(const char id[kUniqueIdBytes], int size, int rank, int device, void** comm,
         void** stream) {
  if (const cudaError_t e = cudaSetDevice(device); e != cudaSuccess) return static_cast<int>(e);
  cudaStream_t s;
  if (const cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
      e != cudaSuccess) {
    return static_cast<int>(e);
  }
  ncclUniqueId unique;
  std::memcpy(&unique, id, sizeof(unique));
  ncclComm_t c;
  const int r = Nccl(ncclCommInitRank(&c, size, unique, rank));
  if (r != 0) {
    cudaStreamDestroy(s);
    return r;
  }
  *comm = c;
  *stream = s;
  return 0;
}

int Destroy(void* comm, void* stream) {
  const int r = Nccl(ncclCommDestroy(C(comm)));
  cudaStreamDestroy(S(stream));
  return r;
}

int Abort(void* comm) { return Nccl(ncclCommAbort(C(comm))); }

int AllReduceSum(void* comm, void* stream, float* data, size_t n) {
  return Nccl(ncclAllReduce(data, data, n, ncclFloat32, ncclSum, C(comm), S(stream)));
}

int ReduceScatterSum(void* comm, void* stream, const float* in, float* out, size_t n_out) {
  return Nccl(ncclReduceScatter(in, out, n_out, ncclFloat32, ncclSum, C(comm), S(stream)));
}

int AllGather(void* comm, void* stream, const float* in, float* out, size_t n_in) {
  return Nccl(ncclAllGather(in, out, n_in, ncclFloat32, C(comm), S(stream)));
}

int Broadcast(void* comm, void* stream, float* data, size_t n, int root) {
  return Nccl(ncclBroadcast(data, data, n, ncclFloat32, root, C(comm), S(stream)));
}

int Synchronize(void* stream) { return static_cast<int>(cudaStreamSynchronize(S(stream))); }

int Malloc(float** out, size_t n) {
  return static_cast<int>(cudaMalloc(reinterpret_cast<void**>(out), n * sizeof(float)));
}
int Free(float* p) { return static_cast<int>(cudaFree(p)); }
int CopyToDevice(float* dst, const float* src, size_t n) {
  return static_cast<int>(cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyHostToDevice));
}
int CopyToHost(float* dst, const float* src, size_t n) {
  return static_cast<int>(cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost));
}
int DeviceCount(int* count) { return static_cast<int>(cudaGetDeviceCount(count)); }

}  // namespace strata::nccl
