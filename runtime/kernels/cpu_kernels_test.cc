// Each CPU kernel against a straightforward double-precision reference, and each backward
// against central finite differences of a random projection of its forward.
#include "runtime/kernels/cpu_kernels.h"

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/base/thread_pool.h"
#include "runtime/kernels/attention.h"
#include "runtime/kernels/matmul.h"

namespace strata::kernels {
namespace {

std::vector<float> Random(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

double Dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

// Checks d/dx <forward(x), g> against `analytic` at a few coordinates.
void ExpectGradient(const std::function<std::vector<float>(const std::vector<float>&)>& forward,
                    std::vector<float> x, const std::vector<float>& g,
                    const std::vector<float>& analytic, double tol, float h = 1e-2f) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 12; ++trial) {
    const size_t i = rng() % x.size();
    const float saved = x[i];
    x[i] = saved + h;
    const double plus = Dot(forward(x), g);
    x[i] = saved - h;
    const double minus = Dot(forward(x), g);
    x[i] = saved;
    const double numeric = (plus - minus) / (2.0 * h);
    EXPECT_NEAR(analytic[i], numeric, tol * (1.0 + std::fabs(numeric))) << "at " << i;
  }
}

TEST(KernelsTest, IsaIsReported) {
  const std::string isa = CpuKernelIsa();
  EXPECT_TRUE(isa == "avx512" || isa == "avx2" || isa == "baseline") << isa;
}

TEST(KernelsTest, LayerNormMatchesReferenceAndGradient) {
  const int N = 5, C = 37;
  auto x = Random(N * C, 1), w = Random(C, 2), b = Random(C, 3), g = Random(N * C, 4);
  std::vector<float> out(N * C), mean(N), rstd(N);
  layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C,
                    1e-5f);
  for (int n = 0; n < N; ++n) {
    double m = 0, v = 0;
    for (int c = 0; c < C; ++c) m += x[n * C + c];
    m /= C;
    for (int c = 0; c < C; ++c) v += (x[n * C + c] - m) * (x[n * C + c] - m);
    const double s = 1.0 / std::sqrt(v / C + 1e-5);
    for (int c = 0; c < C; ++c) {
      EXPECT_NEAR(out[n * C + c], (x[n * C + c] - m) * s * w[c] + b[c], 1e-5);
    }
  }
  std::vector<float> dx(N * C, 0.0f), dw(C, 0.0f), db(C, 0.0f);
  layernorm_backward(dx.data(), dw.data(), db.data(), g.data(), x.data(), w.data(), mean.data(),
                     rstd.data(), N, C);
  auto fx = [&](const std::vector<float>& xx) {
    std::vector<float> o(N * C);
    layernorm_forward(o.data(), nullptr, nullptr, xx.data(), w.data(), b.data(), N, C, 1e-5f);
    return o;
  };
  ExpectGradient(fx, x, g, dx, 2e-2);
  auto fw = [&](const std::vector<float>& ww) {
    std::vector<float> o(N * C);
    layernorm_forward(o.data(), nullptr, nullptr, x.data(), ww.data(), b.data(), N, C, 1e-5f);
    return o;
  };
  ExpectGradient(fw, w, g, dw, 2e-2);
}

TEST(KernelsTest, RmsNormGradient) {
  const int N = 4, C = 29;
  auto x = Random(N * C, 5), w = Random(C, 6), g = Random(N * C, 7);
  std::vector<float> out(N * C), rstd(N), dx(N * C, 0.0f), dw(C, 0.0f);
  rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-6f);
  for (int c = 0; c < C; ++c) {
    double ss = 0;
    for (int i = 0; i < C; ++i) ss += x[i] * x[i];
    EXPECT_NEAR(out[c], x[c] / std::sqrt(ss / C + 1e-6) * w[c], 1e-5);
  }
  rmsnorm_backward(dx.data(), dw.data(), g.data(), x.data(), w.data(), rstd.data(), N, C);
  auto fx = [&](const std::vector<float>& xx) {
    std::vector<float> o(N * C);
    rmsnorm_forward(o.data(), nullptr, xx.data(), w.data(), N, C, 1e-6f);
    return o;
  };
  ExpectGradient(fx, x, g, dx, 2e-2);
  auto fw = [&](const std::vector<float>& ww) {
    std::vector<float> o(N * C);
    rmsnorm_forward(o.data(), nullptr, x.data(), ww.data(), N, C, 1e-6f);
    return o;
  };
  ExpectGradient(fw, w, g, dw, 2e-2);
}

TEST(KernelsTest, GeluMatchesTanhFormulaAndGradient) {
  const int n = 40000;  // Several parallel chunks.
  auto x = Random(n, 8, 3.0f), g = Random(n, 9);
  std::vector<float> out(n), dx(n);
  gelu_forward(out.data(), x.data(), n);
  for (int i = 0; i < n; ++i) {
    const double v = x[i];
    const double ref = 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    ASSERT_NEAR(out[i], ref, 2e-6 * (1 + std::fabs(ref))) << x[i];
  }
  gelu_backward(dx.data(), x.data(), g.data(), n);
  auto f = [&](const std::vector<float>& xx) {
    std::vector<float> o(n);
    gelu_forward(o.data(), xx.data(), n);
    return o;
  };
  ExpectGradient(f, x, g, dx, 2e-2, 1e-2f);
}

TEST(KernelsTest, SwigluGradient) {
  const int N = 3, F = 21;
  auto gu = Random(N * 2 * F, 10, 2.0f), g = Random(N * F, 11);
  std::vector<float> out(N * F), d(N * 2 * F);
  swiglu_forward(out.data(), gu.data(), N, F);
  const double gate = gu[0], up = gu[F];
  EXPECT_NEAR(out[0], gate / (1 + std::exp(-gate)) * up, 1e-5);
  swiglu_backward(d.data(), gu.data(), g.data(), N, F);
  auto f = [&](const std::vector<float>& xx) {
    std::vector<float> o(N * F);
    swiglu_forward(o.data(), xx.data(), N, F);
    return o;
  };
  ExpectGradient(f, gu, g, d, 2e-2);
}

TEST(KernelsTest, CrossEntropyMatchesLogSoftmaxAndGradient) {
  const int rows = 6, V = 1001;
  auto logits = Random(rows * V, 12, 4.0f);
  std::vector<int32_t> targets = {3, 1000, -100, 0, 512, 77};
  std::vector<float> work = logits, losses(rows);
  crossentropy_rows(work.data(), losses.data(), targets.data(), rows, V, 0.5f);
  for (int r = 0; r < rows; ++r) {
    if (targets[r] < 0) {
      EXPECT_EQ(losses[r], 0.0f);
      for (int v = 0; v < V; ++v) ASSERT_EQ(work[r * V + v], 0.0f);
      continue;
    }
    double mx = -1e30, sum = 0;
    for (int v = 0; v < V; ++v) mx = std::max<double>(mx, logits[r * V + v]);
    for (int v = 0; v < V; ++v) sum += std::exp(logits[r * V + v] - mx);
    EXPECT_NEAR(losses[r], std::log(sum) + mx - logits[r * V + targets[r]], 1e-4);
    for (int v = 0; v < V; v += 97) {
      const double p = std::exp(logits[r * V + v] - mx) / sum;
      EXPECT_NEAR(work[r * V + v], 0.5 * (p - (v == targets[r] ? 1 : 0)), 1e-6);
    }
  }
}

TEST(KernelsTest, RopeInverseUndoesForwardAndMatchesFormula) {
  const int B = 2, T = 5, NH = 4, NKV = 2, HD = 8;
  const int row = (NH + 2 * NKV) * HD;
  auto qkv = Random(B * T * row, 13);
  std::vector<float> work = qkv;
  std::vector<float> inv_freq(HD / 2);
  for (int i = 0; i < HD / 2; ++i)
    inv_freq[i] = static_cast<float>(std::pow(10000.0, -2.0 * i / HD));
  rope_apply(work.data(), B, T, NH, NKV, HD, inv_freq.data(), false);
  // Query head 1 at (b=1, t=3), dimension pair (2, 6).
  const int t = 3, h = 1, i = 2;
  const float* x = &qkv[(1 * T + t) * row + h * HD];
  const double inv = 1.0 / std::pow(10000.0, 2.0 * i / HD);
  const double c = std::cos(t * inv), s = std::sin(t * inv);
  EXPECT_NEAR(work[(1 * T + t) * row + h * HD + i], x[i] * c - x[i + HD / 2] * s, 1e-5);
  // v heads are untouched.
  for (int j = (NH + NKV) * HD; j < row; ++j) ASSERT_EQ(work[j], qkv[j]);
  rope_apply(work.data(), B, T, NH, NKV, HD, inv_freq.data(), true);
  for (size_t j = 0; j < qkv.size(); ++j) ASSERT_NEAR(work[j], qkv[j], 1e-5);
}

TEST(KernelsTest, AttentionMatchesNaiveAndGradient) {
  AttentionShape s{2, 7, 4, 2, 6};
  const int64_t row = s.qkv_row(), C = s.NH * s.HD;
  auto qkv = Random(s.B * s.T * row, 14), g = Random(s.B * s.T * C, 15);
  std::vector<float> out(s.B * s.T * C), att(s.B * s.NH * s.T * s.T);
  attention_forward(out.data(), att.data(), nullptr, qkv.data(), s);
  // Naive reference for (b=1, h=3, t=4).
  const int b = 1, h = 3, t = 4, kvh = h / (s.NH / s.NKV);
  std::vector<double> w(t + 1);
  double mx = -1e30, sum = 0;
  for (int j = 0; j <= t; ++j) {
    double dot = 0;
    for (int d = 0; d < s.HD; ++d) {
      dot += qkv[(b * s.T + t) * row + h * s.HD + d] *
             qkv[(b * s.T + j) * row + (s.NH + kvh) * s.HD + d];
    }
    w[j] = dot / std::sqrt(static_cast<double>(s.HD));
    mx = std::max(mx, w[j]);
  }
  for (double& v : w) sum += (v = std::exp(v - mx));
  for (int d = 0; d < s.HD; ++d) {
    double ref = 0;
    for (int j = 0; j <= t; ++j) {
      ref += w[j] / sum * qkv[(b * s.T + j) * row + (s.NH + s.NKV + kvh) * s.HD + d];
    }
    EXPECT_NEAR(out[(b * s.T + t) * C + h * s.HD + d], ref, 1e-5);
  }
  std::vector<float> dqkv(qkv.size()), scratch(AttentionScratchFloats(s));
  attention_backward(dqkv.data(), scratch.data(), g.data(), qkv.data(), att.data(), s);
  auto f = [&](const std::vector<float>& x) {
    std::vector<float> o(s.B * s.T * C), a(s.B * s.NH * s.T * s.T);
    attention_forward(o.data(), a.data(), nullptr, x.data(), s);
    return o;
  };
  ExpectGradient(f, qkv, g, dqkv, 2e-2);
  // Inference mode (scratch instead of saved probabilities) gives the same output.
  std::vector<float> out2(out.size());
  attention_forward(out2.data(), nullptr, scratch.data(), qkv.data(), s);
  EXPECT_EQ(out, out2);
}

TEST(KernelsTest, MatmulBackwardGradient) {
  const int N = 6, C = 9, OC = 5;
  auto x = Random(N * C, 16), w = Random(OC * C, 17), b = Random(OC, 18), g = Random(N * OC, 19);
  std::vector<float> dx(N * C, 0.0f), dw(OC * C, 0.0f), db(OC, 0.0f);
  matmul_backward(dx.data(), dw.data(), db.data(), g.data(), x.data(), w.data(), N, C, OC, true);
  auto fx = [&](const std::vector<float>& xx) {
    std::vector<float> o(N * OC);
    matmul_forward(o.data(), xx.data(), w.data(), b.data(), N, C, OC);
    return o;
  };
  ExpectGradient(fx, x, g, dx, 1e-3);
  auto fw = [&](const std::vector<float>& ww) {
    std::vector<float> o(N * OC);
    matmul_forward(o.data(), x.data(), ww.data(), b.data(), N, C, OC);
    return o;
  };
  ExpectGradient(fw, w, g, dw, 1e-3);
  auto fb = [&](const std::vector<float>& bb) {
    std::vector<float> o(N * OC);
    matmul_forward(o.data(), x.data(), w.data(), bb.data(), N, C, OC);
    return o;
  };
  ExpectGradient(fb, b, g, db, 1e-3);
}

TEST(KernelsTest, ParameterGradientsDoNotDependOnThreadCount) {
  const int B = 3, T = 50, C = 130, V = 11;
  auto dout = Random(B * T * C, 20);
  std::vector<int32_t> tokens(B * T);
  for (int i = 0; i < B * T; ++i) tokens[i] = (i * 7) % V;
  std::vector<float> dwte1(V * C, 0.0f), dwpe1(T * C, 0.0f), dwte2 = dwte1, dwpe2 = dwpe1;
  ThreadPool& pool = ThreadPool::Global();
  const int threads = pool.threads();
  pool.SetThreads(1);
  embedding_backward(dwte1.data(), dwpe1.data(), dout.data(), tokens.data(), B, T, C);
  pool.SetThreads(3);
  embedding_backward(dwte2.data(), dwpe2.data(), dout.data(), tokens.data(), B, T, C);
  pool.SetThreads(threads);
  EXPECT_EQ(dwte1, dwte2);
  EXPECT_EQ(dwpe1, dwpe2);
}

}  // namespace
}  // namespace strata::kernels
