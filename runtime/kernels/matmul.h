// Linear layers on the CPU through OpenBLAS sgemm. Weights are (OC, C) as in nn.Linear.
#ifndef STRATA_RUNTIME_KERNELS_MATMUL_H_
#define STRATA_RUNTIME_KERNELS_MATMUL_H_

#include <cstdint>

namespace strata::kernels {

// out (N, OC) = inp (N, C) @ weight (OC, C)^T + bias (OC; may be null).
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                    int C, int OC);

// dinp (N, C) += dout @ weight (when dinp is not null; `overwrite_dinp` sets instead of adds);
// dweight (OC, C) += dout^T @ inp and dbias (OC) += column sums of dout, each when not null
// (a frozen weight has none).
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int C, int OC, bool overwrite_dinp);

// Plain C (M, N) = alpha * op(A) op(B) + beta * C in row-major, for callers with other shapes.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Threads OpenBLAS uses (the count set for the process).
int BlasThreads();
void SetBlasThreads(int threads);

}  // namespace strata::kernels

#endif  // STRATA_RUNTIME_KERNELS_MATMUL_H_
