// CUDA side of the GPU block executor: runtime wrappers (streams, events, copies, cuBLAS) and
// the forward kernels of a transformer block, mirroring runtime/kernels' CPU definitions
// (layouts, the tanh GELU, half-split RoPE with float32 angles, grouped-query causal attention).
// Simple one-row-per-thread-block kernels: correctness first; the matmuls are cuBLAS sgemm in
// full fp32 (no TF32), which is where a block's time goes.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/offload/gpu/gpu_kernels.h"

namespace strata::gpu {
namespace {

cudaStream_t S(Stream s) { return static_cast<cudaStream_t>(s); }
int Code(cudaError_t e) { return static_cast<int>(e); }
int Launched() { return Code(cudaGetLastError()); }

constexpr int kThreads = 256;

// Sum of v over the thread block (blockDim.x == kThreads); every thread gets the result.
__device__ float BlockSum(float v) {
  __shared__ float partial[kThreads / 32];
  __syncthreads();  // partial may still be read by a previous call.
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < kThreads / 32; ++w) total += partial[w];
  return total;
}

__device__ float BlockMax(float v) {
  __shared__ float partial[kThreads / 32];
  __syncthreads();
  for (int offset = 16; offset > 0; offset /= 2) {
    v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, offset));
  }
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  float m = partial[0];
  for (int w = 1; w < kThreads / 32; ++w) m = fmaxf(m, partial[w]);
  return m;
}

__global__ void LayerNormKernel(float* out, const float* x, const float* w, const float* b, int C,
                                float eps) {
  const float* row = x + static_cast<int64_t>(blockIdx.x) * C;
  float* o = out + static_cast<int64_t>(blockIdx.x) * C;
  float sum = 0.0f;
  for (int i = threadIdx.x; i < C; i += kThreads) sum += row[i];
  const float m = BlockSum(sum) / C;
  float var = 0.0f;
  for (int i = threadIdx.x; i < C; i += kThreads) var += (row[i] - m) * (row[i] - m);
  const float s = 1.0f / sqrtf(BlockSum(var) / C + eps);
  for (int i = threadIdx.x; i < C; i += kThreads) o[i] = (row[i] - m) * s * w[i] + b[i];
}

__global__ void RmsNormKernel(float* out, const float* x, const float* w, int C, float eps) {
  const float* row = x + static_cast<int64_t>(blockIdx.x) * C;
  float* o = out + static_cast<int64_t>(blockIdx.x) * C;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < C; i += kThreads) ss += row[i] * row[i];
  const float s = 1.0f / sqrtf(BlockSum(ss) / C + eps);
  for (int i = threadIdx.x; i < C; i += kThreads) o[i] = row[i] * s * w[i];
}

__global__ void AddBiasKernel(float* y, const float* bias, int64_t n, int out) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    y[i] += bias[i % out];
  }
}

__global__ void GeluKernel(float* out, const float* x, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = x[i];
    const float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
    out[i] = 0.5f * v * (1.0f + tanhf(u));
  }
}

__global__ void SwigluKernel(float* out, const float* gate_up, int64_t N, int F) {
  const int64_t n = N * F;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / F, col = i % F;
    const float g = gate_up[row * 2 * F + col];
    out[i] = g / (1.0f + expf(-g)) * gate_up[row * 2 * F + F + col];
  }
}

// One thread per (position, pair index i, rotated head).
__global__ void RopeKernel(float* qkv, int B, int T, int NH, int NKV, int HD, const float* inv_freq,
                           float scale) {
  const int half = HD / 2, heads = NH + NKV;
  const int64_t row = static_cast<int64_t>(NH + 2 * NKV) * HD;
  const int64_t n = static_cast<int64_t>(B) * T * half * heads;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int h = static_cast<int>(idx % heads);
    const int i = static_cast<int>((idx / heads) % half);
    const int64_t bt = idx / (static_cast<int64_t>(heads) * half);
    const int t = static_cast<int>(bt % T);
    const float angle = static_cast<float>(t) * inv_freq[i];
    const float c = cosf(angle) * scale, s = sinf(angle) * scale;
    float* x = qkv + bt * row + static_cast<int64_t>(h) * HD;
    const float x1 = x[i], x2 = x[i + half];
    x[i] = x1 * c - x2 * s;
    x[i + half] = x2 * c + x1 * s;
  }
}

// One thread block per (query position, head, batch); scores in dynamic shared memory (T).
__global__ void AttentionKernel(float* out, const float* qkv, int T, int NH, int NKV, int HD,
                                int window) {
  extern __shared__ float scores[];
  const int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int group = NH / NKV, kvh = h / group;
  const int64_t row = static_cast<int64_t>(NH + 2 * NKV) * HD;
  const float* base = qkv + static_cast<int64_t>(b) * T * row;
  const float* q = base + static_cast<int64_t>(i) * row + static_cast<int64_t>(h) * HD;
  const float scale = 1.0f / sqrtf(static_cast<float>(HD));
  const int lo = window > 0 && i >= window ? i - window + 1 : 0;  // First position attended.
  float local_max = -3.0e38f;
  for (int j = lo + threadIdx.x; j <= i; j += kThreads) {
    const float* k = base + static_cast<int64_t>(j) * row + static_cast<int64_t>(NH + kvh) * HD;
    float dot = 0.0f;
    for (int d = 0; d < HD; ++d) dot += q[d] * k[d];
    scores[j] = dot * scale;
    local_max = fmaxf(local_max, scores[j]);
  }
  const float m = BlockMax(local_max);
  float local_sum = 0.0f;
  for (int j = lo + threadIdx.x; j <= i; j += kThreads) {
    scores[j] = expf(scores[j] - m);
    local_sum += scores[j];
  }
  const float inv = 1.0f / BlockSum(local_sum);  // BlockSum synchronizes: scores are complete.
  float* o = out + (static_cast<int64_t>(b) * T + i) * NH * HD + static_cast<int64_t>(h) * HD;
  for (int d = threadIdx.x; d < HD; d += kThreads) {
    float acc = 0.0f;
    for (int j = lo; j <= i; ++j) {
      acc += scores[j] *
             base[static_cast<int64_t>(j) * row + static_cast<int64_t>(NH + NKV + kvh) * HD + d];
    }
    o[d] = acc * inv;
  }
}

__global__ void ReluKernel(float* out, const float* x, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = x[i] > 0.0f ? x[i] : 0.0f;
  }
}

// One thread block per (row, head) of the q and k heads; v heads are copied by the block of
// head 0.
__global__ void HeadRmsNormKernel(float* out, const float* x, const float* q_weight,
                                  const float* k_weight, int NH, int NKV, int HD, float eps) {
  const int64_t row = static_cast<int64_t>(NH + 2 * NKV) * HD;
  const int h = blockIdx.y;
  const int64_t at = static_cast<int64_t>(blockIdx.x) * row + static_cast<int64_t>(h) * HD;
  const float* w = h < NH ? q_weight : k_weight;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < HD; i += kThreads) ss += x[at + i] * x[at + i];
  const float s = 1.0f / sqrtf(BlockSum(ss) / HD + eps);
  for (int i = threadIdx.x; i < HD; i += kThreads) out[at + i] = x[at + i] * s * w[i];
  if (h == 0) {
    const int64_t v = static_cast<int64_t>(blockIdx.x) * row + static_cast<int64_t>(NH + NKV) * HD;
    for (int i = threadIdx.x; i < NKV * HD; i += kThreads) out[v + i] = x[v + i];
  }
}

__global__ void AddKernel(float* x, const float* y, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    x[i] += y[i];
  }
}

int Grid(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}

}  // namespace

const char* ErrorString(int code) {
  if (code >= kBlasErrorBase) return "cuBLAS error";
  return cudaGetErrorString(static_cast<cudaError_t>(code));
}

int SetDevice(int device) { return Code(cudaSetDevice(device)); }
int Malloc(float** out, int64_t floats) {
  return Code(cudaMalloc(reinterpret_cast<void**>(out), static_cast<size_t>(floats) * 4));
}
int Free(void* p) { return Code(cudaFree(p)); }
int HostRegister(void* p, int64_t bytes) {
  return Code(cudaHostRegister(p, static_cast<size_t>(bytes), cudaHostRegisterDefault));
}
int HostUnregister(void* p) { return Code(cudaHostUnregister(p)); }
int StreamCreate(Stream* out) {
  cudaStream_t s;
  const cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  *out = s;
  return Code(e);
}
int StreamDestroy(Stream s) { return Code(cudaStreamDestroy(S(s))); }
int StreamSynchronize(Stream s) { return Code(cudaStreamSynchronize(S(s))); }
int EventCreate(Event* out) {
  cudaEvent_t e;
  const cudaError_t r = cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
  *out = e;
  return Code(r);
}
int EventDestroy(Event e) { return Code(cudaEventDestroy(static_cast<cudaEvent_t>(e))); }
int EventRecord(Event e, Stream s) {
  return Code(cudaEventRecord(static_cast<cudaEvent_t>(e), S(s)));
}
int EventSynchronize(Event e) { return Code(cudaEventSynchronize(static_cast<cudaEvent_t>(e))); }
int StreamWaitEvent(Stream s, Event e) {
  return Code(cudaStreamWaitEvent(S(s), static_cast<cudaEvent_t>(e), 0));
}
int CopyToDevice(float* dst, const float* src, int64_t floats, Stream s) {
  return Code(
      cudaMemcpyAsync(dst, src, static_cast<size_t>(floats) * 4, cudaMemcpyHostToDevice, S(s)));
}
int CopyToHost(float* dst, const float* src, int64_t floats, Stream s) {
  return Code(
      cudaMemcpyAsync(dst, src, static_cast<size_t>(floats) * 4, cudaMemcpyDeviceToHost, S(s)));
}

int BlasCreate(Blas* out, Stream s) {
  cublasHandle_t h;
  cublasStatus_t st = cublasCreate(&h);
  if (st != CUBLAS_STATUS_SUCCESS) return kBlasErrorBase + static_cast<int>(st);
  st = cublasSetStream(h, S(s));
  if (st == CUBLAS_STATUS_SUCCESS) st = cublasSetMathMode(h, CUBLAS_DEFAULT_MATH);  // No TF32.
  *out = h;
  return st == CUBLAS_STATUS_SUCCESS ? 0 : kBlasErrorBase + static_cast<int>(st);
}
int BlasDestroy(Blas b) {
  const cublasStatus_t st = cublasDestroy(static_cast<cublasHandle_t>(b));
  return st == CUBLAS_STATUS_SUCCESS ? 0 : kBlasErrorBase + static_cast<int>(st);
}

int Linear(Blas blas, Stream s, float* y, const float* x, const float* w, const float* bias,
           int64_t N, int in, int out) {
  // Row-major y (N, out) = x (N, in) w^T is column-major y^T (out, N) = w^T' x^T: with w read as
  // a column-major (in, out) matrix, op(w) = transpose.
  const float one = 1.0f, zero = 0.0f;
  const cublasStatus_t st =
      cublasSgemm(static_cast<cublasHandle_t>(blas), CUBLAS_OP_T, CUBLAS_OP_N, out,
                  static_cast<int>(N), in, &one, w, in, x, in, &zero, y, out);
  if (st != CUBLAS_STATUS_SUCCESS) return kBlasErrorBase + static_cast<int>(st);
  if (bias == nullptr) return 0;
  AddBiasKernel<<<Grid(N * out), kThreads, 0, S(s)>>>(y, bias, N * out, out);
  return Launched();
}

int LayerNorm(Stream s, float* out, const float* x, const float* w, const float* b, int64_t N,
              int C, float eps) {
  LayerNormKernel<<<static_cast<unsigned>(N), kThreads, 0, S(s)>>>(out, x, w, b, C, eps);
  return Launched();
}

int RmsNorm(Stream s, float* out, const float* x, const float* w, int64_t N, int C, float eps) {
  RmsNormKernel<<<static_cast<unsigned>(N), kThreads, 0, S(s)>>>(out, x, w, C, eps);
  return Launched();
}

int Gelu(Stream s, float* out, const float* x, int64_t n) {
  GeluKernel<<<Grid(n), kThreads, 0, S(s)>>>(out, x, n);
  return Launched();
}

int Swiglu(Stream s, float* out, const float* gate_up, int64_t N, int F) {
  SwigluKernel<<<Grid(N * F), kThreads, 0, S(s)>>>(out, gate_up, N, F);
  return Launched();
}

int Rope(Stream s, float* qkv, int B, int T, int NH, int NKV, int HD, const float* inv_freq,
         float scale) {
  const int64_t n = static_cast<int64_t>(B) * T * (HD / 2) * (NH + NKV);
  RopeKernel<<<Grid(n), kThreads, 0, S(s)>>>(qkv, B, T, NH, NKV, HD, inv_freq, scale);
  return Launched();
}

int Attention(Stream s, float* out, const float* qkv, int B, int T, int NH, int NKV, int HD,
              int window) {
  const dim3 grid(static_cast<unsigned>(T), static_cast<unsigned>(NH), static_cast<unsigned>(B));
  const size_t shared = static_cast<size_t>(T) * sizeof(float);
  if (shared > 48 * 1024) {
    const cudaError_t e = cudaFuncSetAttribute(
        AttentionKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
    if (e != cudaSuccess) return Code(e);
  }
  AttentionKernel<<<grid, kThreads, shared, S(s)>>>(out, qkv, T, NH, NKV, HD, window);
  return Launched();
}

int Relu(Stream s, float* out, const float* x, int64_t n) {
  ReluKernel<<<Grid(n), kThreads, 0, S(s)>>>(out, x, n);
  return Launched();
}

int HeadRmsNorm(Stream s, float* out, const float* x, const float* q_weight, const float* k_weight,
                int64_t N, int NH, int NKV, int HD, float eps) {
  const dim3 grid(static_cast<unsigned>(N), static_cast<unsigned>(NH + NKV));
  HeadRmsNormKernel<<<grid, kThreads, 0, S(s)>>>(out, x, q_weight, k_weight, NH, NKV, HD, eps);
  return Launched();
}

int AddInPlace(Stream s, float* x, const float* y, int64_t n) {
  AddKernel<<<Grid(n), kThreads, 0, S(s)>>>(x, y, n);
  return Launched();
}

}  // namespace strata::gpu
