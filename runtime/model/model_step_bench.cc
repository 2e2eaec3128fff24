// model_step_bench: GPT-2-small-shaped training and ZO throughput against PyTorch CPU, measured
// in the same run with the same shapes and thread count.
//   (a) FO step: forward + backward + AdamW, tokens/s
//   (b) two loss-only forward passes (a ZO step's compute), tokens/s
//   (c) peak RSS of each, from the child process that ran it
// Each case runs in its own child process (this binary with --mode, or the PyTorch peer), so
// peak RSS is per case. Prints progress, then one JSON line with the figures.
//
//   bazel run -c opt //runtime/model:model_step_bench [-- --steps=3 --threads=2]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/kernels/cpu_kernels.h"
#include "runtime/kernels/matmul.h"
#include "runtime/model/transformer.h"
#include "runtime/optim/adamw.h"
#include "runtime/testing/bench_util.h"

ABSL_FLAG(std::string, mode, "all", "all | fo | fwd2 (fo and fwd2 run one case in-process)");
ABSL_FLAG(int, steps, 3, "Timed steps per case (after one warm-up step); the median counts.");
ABSL_FLAG(int, threads, 2, "Compute threads for Strata and PyTorch.");
ABSL_FLAG(int, batch, 4, "Sequences per step.");
ABSL_FLAG(int, seq, 256, "Tokens per sequence.");
ABSL_FLAG(bool, torch, true, "Also run the PyTorch peer.");

namespace strata {
namespace {

// Matmul FLOPs of one forward pass over B*T tokens (attention scores computed in full).
double ForwardFlops(const ModelConfig& c, int B, int T) {
  const double N = static_cast<double>(B) * T, C = c.d_model, F = c.d_ff, L = c.n_layer;
  const double per_layer = 2 * N * (C * 3 * C + C * C + 2 * C * F) + 2 * 2 * N * T * C;
  return L * per_layer + 2 * N * C * c.vocab_size;
}

// Runs one case in this process and prints {"tok_s": ...}.
int RunCase(const std::string& mode) {
  const int B = absl::GetFlag(FLAGS_batch), T = absl::GetFlag(FLAGS_seq);
  Transformer::Options options;
  options.threads = absl::GetFlag(FLAGS_threads);
  auto model = Transformer::Create(Gpt2SmallConfig(), options);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  Transformer& m = **model;
  m.InitializeParameters(1);
  std::mt19937 rng(0);
  std::vector<int32_t> tokens(B * T), targets(B * T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % 50257);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % 50257);
  std::unique_ptr<AdamW> adamw;
  if (mode == "fo") adamw = std::make_unique<AdamW>(m.layout(), AdamWConfig());
  std::vector<double> times;
  for (int step = 0; step <= absl::GetFlag(FLAGS_steps); ++step) {
    const auto start = std::chrono::steady_clock::now();
    if (mode == "fo") {
      m.ZeroGrads();
      if (!m.ForwardBackward(tokens, targets, B, T).ok()) return 1;
      adamw->Step(m.params(), m.grads(), 1e-4f);
    } else {
      if (!m.Loss(tokens, targets, B, T).ok() || !m.Loss(tokens, targets, B, T).ok()) return 1;
    }
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "strata %s step %d: %.3f s\n", mode.c_str(), step, s);
    if (step > 0) times.push_back(s);
  }
  const double tokens_per_step = static_cast<double>(B) * T * (mode == "fwd2" ? 2 : 1);
  std::printf("{\"tok_s\": %.3f}\n", tokens_per_step / bench::Median(times));
  return 0;
}

// Best-of-3 GFLOP/s of one large OpenBLAS sgemm (2048^3): the ceiling the step figures are
// compared with.
double SgemmPeakGflops(int threads) {
  kernels::SetBlasThreads(threads);
  const int n = 2048;
  std::vector<float> a(static_cast<size_t>(n) * n, 0.5f), b(a.size(), 0.25f), c(a.size());
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    kernels::sgemm(false, true, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, 2.0 * n * n * n / s / 1e9);
  }
  return best;
}

int RunAll() {
  const int threads = absl::GetFlag(FLAGS_threads), steps = absl::GetFlag(FLAGS_steps);
  const int B = absl::GetFlag(FLAGS_batch), T = absl::GetFlag(FLAGS_seq);
  const ModelConfig config = Gpt2SmallConfig();
  std::fprintf(stderr,
               "model_step_bench: GPT-2 small (%.1fM params), B=%d T=%d, %d threads, kernels %s\n",
               config.NumParameters() / 1e6, B, T, threads, kernels::CpuKernelIsa());
  auto self = [&](const std::string& mode) {
    return std::vector<std::string>{"/proc/self/exe",
                                    "--mode=" + mode,
                                    absl::StrCat("--threads=", threads),
                                    absl::StrCat("--steps=", steps),
                                    absl::StrCat("--batch=", B),
                                    absl::StrCat("--seq=", T)};
  };
  std::string config_json = ToHfConfigJson(config);
  config_json.erase(std::remove(config_json.begin(), config_json.end(), '\n'), config_json.end());
  auto torch = [&](const std::string& mode) {
    return std::vector<std::string>{"/usr/bin/python3",
                                    "runtime/model/testing/torch_peer_bench.py",
                                    "--mode=" + mode,
                                    absl::StrCat("--threads=", threads),
                                    absl::StrCat("--steps=", steps),
                                    absl::StrCat("--B=", B),
                                    absl::StrCat("--T=", T),
                                    "--config=" + config_json};
  };
  const double peak = SgemmPeakGflops(threads);
  std::fprintf(stderr, "sgemm 2048^3 (OpenBLAS, %d threads): %.1f GFLOP/s\n", threads, peak);
  bench::ChildResult fo = bench::RunChild(self("fo"));
  bench::ChildResult fwd2 = bench::RunChild(self("fwd2"));
  bench::ChildResult torch_fo, torch_fwd2;
  if (absl::GetFlag(FLAGS_torch)) {
    torch_fo = bench::RunChild(torch("fo"));
    torch_fwd2 = bench::RunChild(torch("fwd2"));
  }
  if (!fo.ok || !fwd2.ok) {
    std::fprintf(stderr, "model_step_bench: a Strata case failed\n");
    return 1;
  }
  const double fwd_flops_per_token = ForwardFlops(config, B, T) / (static_cast<double>(B) * T);
  const double fo_gflops = 3 * fwd_flops_per_token * fo.value / 1e9;
  const double fwd2_gflops = fwd_flops_per_token * fwd2.value / 1e9;
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  std::fprintf(stderr, "(a) FO step:       strata %8.1f tok/s  torch %8.1f tok/s  ratio %.2fx\n",
               fo.value, torch_fo.value, ratio(fo.value, torch_fo.value));
  std::fprintf(stderr, "(b) 2x loss fwd:   strata %8.1f tok/s  torch %8.1f tok/s  ratio %.2fx\n",
               fwd2.value, torch_fwd2.value, ratio(fwd2.value, torch_fwd2.value));
  std::fprintf(stderr, "(c) peak RSS FO:   strata %8.0f MB     torch %8.0f MB\n", fo.rss_mb,
               torch_fo.rss_mb);
  std::fprintf(stderr, "    peak RSS fwd2: strata %8.0f MB     torch %8.0f MB\n", fwd2.rss_mb,
               torch_fwd2.rss_mb);
  std::fprintf(stderr,
               "    achieved: FO %.1f GFLOP/s, fwd %.1f GFLOP/s of matmul FLOPs = %.0f%% / %.0f%% "
               "of the sgemm ceiling %.1f\n",
               fo_gflops, fwd2_gflops, 100 * fo_gflops / peak, 100 * fwd2_gflops / peak, peak);
  std::printf(
      "{\"fo_tok_s\": %.2f, \"torch_fo_tok_s\": %.2f, \"fo_ratio\": %.3f, \"fwd2_tok_s\": %.2f, "
      "\"torch_fwd2_tok_s\": %.2f, \"fwd2_ratio\": %.3f, \"rss_mb\": %.0f, \"torch_rss_mb\": "
      "%.0f, \"fwd2_rss_mb\": %.0f, \"torch_fwd2_rss_mb\": %.0f, \"gflops\": %.1f, "
      "\"fwd2_gflops\": %.1f, \"sgemm_peak_gflops\": %.1f, \"threads\": %d, \"isa\": \"%s\"}\n",
      fo.value, torch_fo.value, ratio(fo.value, torch_fo.value), fwd2.value, torch_fwd2.value,
      ratio(fwd2.value, torch_fwd2.value), fo.rss_mb, torch_fo.rss_mb, fwd2.rss_mb,
      torch_fwd2.rss_mb, fo_gflops, fwd2_gflops, peak, threads, kernels::CpuKernelIsa());
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "fo" || mode == "fwd2") return strata::RunCase(mode);
  if (mode != "all") {
    std::fprintf(stderr, "--mode must be all, fo or fwd2\n");
    return 2;
  }
  return strata::RunAll();
}
