// adam_bench: CPU AdamW throughput (parameters updated per second) of Strata's fused,
// vectorized, multi-threaded AdamW against torch.optim.AdamW(foreach=True) from Debian's
// python3-torch, in the same run, on the GPT-2-small parameter shapes (124M parameters), same
// thread count, medians of the timed steps. Also reports the achieved memory traffic (AdamW reads
// params, grads, m, v and writes params, m, v: 28 bytes per parameter).
//   bazel run -c opt //runtime/optim:adam_bench
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "runtime/base/aligned_buffer.h"
#include "runtime/base/thread_pool.h"
#include "runtime/kernels/cpu_dispatch.h"
#include "runtime/model/param_layout.h"
#include "runtime/optim/adamw.h"
#include "runtime/testing/bench_util.h"

ABSL_FLAG(int, threads, 2, "Threads for both sides.");
ABSL_FLAG(int, steps, 9, "Timed steps after one warm-up; the median counts.");
ABSL_FLAG(bool, torch, true, "Run the PyTorch peer.");

namespace strata {
namespace {

// The memory bound of a 28-byte-a-parameter pass: AdamW's streams (read params, grads, m, v;
// write params, m, v) with next to no arithmetic, tiled and threaded like adamw_update.
STRATA_CPU_CLONES void StreamTile(float* p, const float* g, float* m, float* v, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    m[i] = 0.5f * m[i] + g[i];
    v[i] = 0.5f * v[i] + g[i];
    p[i] = 0.5f * p[i] + m[i] + v[i];
  }
}

int Run() {
  const int threads = absl::GetFlag(FLAGS_threads), steps = absl::GetFlag(FLAGS_steps);
  ThreadPool::Global().SetThreads(threads);
  const ParamLayout layout(Gpt2SmallConfig());
  const int64_t n = layout.NumElements();
  AlignedBuffer params(n), grads(n);
  std::mt19937 rng(0);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < n; ++i) {
    params.data()[i] = 0.02f * normal(rng);
    grads.data()[i] = 1e-3f * normal(rng);
  }
  AdamWConfig config;
  config.weight_decay = 0.1f;
  AdamW adam(layout, config);
  std::vector<double> times;
  for (int step = 0; step <= steps; ++step) {
    const auto start = std::chrono::steady_clock::now();
    adam.Step(params.span(), grads.span(), 1e-4f);
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (step > 0) times.push_back(s);
  }
  const double strata_s = bench::Median(times);
  std::vector<double> bound_times;
  for (int step = 0; step <= steps; ++step) {
    const auto start = std::chrono::steady_clock::now();
    constexpr int64_t kTile = 16384;
    ParallelFor((n + kTile - 1) / kTile, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        StreamTile(params.data() + t * kTile, grads.data() + t * kTile, adam.m().data() + t * kTile,
                   adam.v().data() + t * kTile, std::min(kTile, n - t * kTile));
      }
    });
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (step > 0) bound_times.push_back(s);
  }
  const double bound_s = bench::Median(bound_times);
  // The same steps writing the bf16 compute copy in the pass (30 bytes a parameter).
  std::vector<uint16_t> copy(n);
  std::vector<double> bf16_times;
  for (int step = 0; step <= steps; ++step) {
    const auto start = std::chrono::steady_clock::now();
    AdamWOverRange(layout, config, 0, n, params.data(), grads.data(), adam.m().data(),
                   adam.v().data(), 1e-4f, adam.step() + 1, /*parallel=*/true, copy.data());
    adam.set_step(adam.step() + 1);
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (step > 0) bf16_times.push_back(s);
  }
  const double bf16_s = bench::Median(bf16_times);
  double torch_s = 0;
  if (absl::GetFlag(FLAGS_torch)) {
    const bench::ChildResult torch =
        bench::RunChild({"/usr/bin/python3", "runtime/optim/testing/torch_adam_bench.py",
                         absl::StrCat(threads), absl::StrCat(steps)});
    if (!torch.ok) {
      std::fprintf(stderr, "adam_bench: the PyTorch peer failed\n");
      return 1;
    }
    torch_s = torch.value;
  }
  const double strata_rate = n / strata_s, torch_rate = torch_s > 0 ? n / torch_s : 0;
  std::fprintf(stderr,
               "AdamW over %lld params (GPT-2 small shapes), %d threads: Strata %.4f s/step = "
               "%.0f M params/s (%.1f GB/s of traffic); torch foreach %.4f s/step = %.0f M "
               "params/s; ratio %.2fx; with the bf16 compute copy %.4f s/step; the bare 28-byte "
               "stream %.4f s/step (AdamW at %.0f%% of it)\n",
               static_cast<long long>(n), threads, strata_s, strata_rate / 1e6,
               strata_rate * 28 / 1e9, torch_s, torch_rate / 1e6,
               torch_rate > 0 ? strata_rate / torch_rate : 0.0, bf16_s, bound_s,
               100.0 * bound_s / strata_s);
  std::printf(
      "{\"params\": %lld, \"threads\": %d, \"strata_params_per_s\": %.0f, "
      "\"torch_params_per_s\": %.0f, \"ratio\": %.3f, \"strata_step_s\": %.5f, "
      "\"torch_step_s\": %.5f, \"strata_gbps\": %.2f, \"strata_bf16_copy_params_per_s\": "
      "%.0f, \"stream_bound_params_per_s\": %.0f, \"fraction_of_bound\": %.3f}\n",
      static_cast<long long>(n), threads, strata_rate, torch_rate,
      torch_rate > 0 ? strata_rate / torch_rate : 0.0, strata_s, torch_s, strata_rate * 28 / 1e9,
      n / bf16_s, n / bound_s, bound_s / strata_s);
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return strata::Run();
}
