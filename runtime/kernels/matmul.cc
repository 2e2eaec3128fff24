// See matmul.h.
#include "runtime/kernels/matmul.h"

#include <cblas.h>

#include "runtime/base/thread_pool.h"
#include "runtime/kernels/cpu_kernels.h"

extern "C" {
// Declared by OpenBLAS's cblas.h on Debian; repeated here for other cblas headers.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
}

namespace strata::kernels {

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(M), static_cast<blasint>(N),
              static_cast<blasint>(K), alpha, A, static_cast<blasint>(lda), B,
              static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                    int C, int OC) {
  if (bias != nullptr) {
    ParallelFor(N, [&](int64_t begin_, int64_t end_) {
      for (int64_t n = static_cast<int64_t>(begin_); n < end_; ++n) {
        float* row = out + n * OC;
        for (int o = 0; o < OC; ++o) row[o] = bias[o];
      }
    });
  }
  sgemm(false, true, N, OC, C, 1.0f, inp, C, weight, C, bias != nullptr ? 1.0f : 0.0f, out, OC);
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int C, int OC, bool overwrite_dinp) {
  if (dinp != nullptr) {
    sgemm(false, false, N, C, OC, 1.0f, dout, OC, weight, C, overwrite_dinp ? 0.0f : 1.0f, dinp, C);
  }
  if (dweight != nullptr) sgemm(true, false, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
  if (dbias != nullptr) colsum_accumulate(dbias, dout, N, OC);
}

int BlasThreads() { return openblas_get_num_threads(); }
void SetBlasThreads(int threads) { openblas_set_num_threads(threads); }

}  // namespace strata::kernels
