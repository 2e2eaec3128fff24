// Plain C++ entry points into the CUDA code of the GPU block executor (compiled by nvcc), so
// host code compiled by gcc needs no CUDA headers. Streams, events and the cuBLAS handle are
// opaque pointers. Every function returns 0 on success, a cudaError_t value, or
// kBlasErrorBase + a cublasStatus_t; ErrorString names it. Kernels are asynchronous on the
// stream they are given.
#ifndef STRATA_RUNTIME_OFFLOAD_GPU_GPU_KERNELS_H_
#define STRATA_RUNTIME_OFFLOAD_GPU_GPU_KERNELS_H_

#include <cstdint>

namespace strata::gpu {

using Stream = void*;
using Event = void*;
using Blas = void*;

constexpr int kBlasErrorBase = 100000;
const char* ErrorString(int code);

int SetDevice(int device);
int Malloc(float** out, int64_t floats);
int Free(void* p);
int HostRegister(void* p, int64_t bytes);
int HostUnregister(void* p);
int StreamCreate(Stream* out);
int StreamDestroy(Stream s);
int StreamSynchronize(Stream s);
int EventCreate(Event* out);
int EventDestroy(Event e);
int EventRecord(Event e, Stream s);
int EventSynchronize(Event e);
int StreamWaitEvent(Stream s, Event e);
int CopyToDevice(float* dst, const float* src, int64_t floats, Stream s);
int CopyToHost(float* dst, const float* src, int64_t floats, Stream s);
int BlasCreate(Blas* out, Stream s);
int BlasDestroy(Blas b);

// Forward pieces, the CUDA counterparts of runtime/kernels (same layouts).
// y (N, out) = x (N, in) @ w^T + bias (bias may be null); w is (out, in) row-major.
int Linear(Blas blas, Stream s, float* y, const float* x, const float* w, const float* bias,
           int64_t N, int in, int out);
int LayerNorm(Stream s, float* out, const float* x, const float* w, const float* b, int64_t N,
              int C, float eps);
int RmsNorm(Stream s, float* out, const float* x, const float* w, int64_t N, int C, float eps);
int Gelu(Stream s, float* out, const float* x, int64_t n);  // tanh approximation.
// gate_up (N, 2F) = [gate | up]; out (N, F) = silu(gate) * up.
int Swiglu(Stream s, float* out, const float* gate_up, int64_t N, int F);
// Rotates the q and k heads of qkv (B, T, (NH + 2 NKV) HD) in place (half-split pairs), cos and
// sin multiplied by `scale`; inv_freq: HD / 2 device floats.
int Rope(Stream s, float* qkv, int B, int T, int NH, int NKV, int HD, const float* inv_freq,
         float scale);
// Causal attention, grouped-query: out (B, T, NH HD). window > 0: each query attends to the
// last `window` positions including itself.
int Attention(Stream s, float* out, const float* qkv, int B, int T, int NH, int NKV, int HD,
              int window);
int Relu(Stream s, float* out, const float* x, int64_t n);
// Per-head RMSNorm of the q and k heads of qkv rows (N rows); v copied. out may not alias x.
int HeadRmsNorm(Stream s, float* out, const float* x, const float* q_weight, const float* k_weight,
                int64_t N, int NH, int NKV, int HD, float eps);
int AddInPlace(Stream s, float* x, const float* y, int64_t n);  // x += y.

// ZO noise on the device, bit for bit runtime/zo/zo_kernels.h's over elements [0, n) of a tensor.
int ZoPerturb(Stream s, float* plus, float* minus, const float* theta, int64_t n, uint32_t tensor,
              uint64_t seed, uint32_t stream_index, bool rademacher, float eps, float threshold);
int ZoUpdateSgd(Stream s, float* theta, int64_t n, uint32_t tensor, uint64_t seed,
                uint32_t stream_index, bool rademacher, float coef, float decay, float threshold);
// z[i] = element i of the noise stream (tests).
int ZoNoise(Stream s, float* z, int64_t n, uint32_t tensor, uint64_t seed, uint32_t stream_index,
            bool rademacher);

}  // namespace strata::gpu

#endif  // STRATA_RUNTIME_OFFLOAD_GPU_GPU_KERNELS_H_
