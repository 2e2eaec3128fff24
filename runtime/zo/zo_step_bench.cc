// zo_step_bench: one MeZO step (two perturbed forwards and the update) on the GPT-2-small shape
// against PyTorch MeZO measured in the same run, plus the noise generator's throughput.
//   bazel run -c opt //runtime/zo:zo_step_bench [-- --steps=3 --threads=2]
// Strata's step is the fused one (update of step t-1 and perturbation of step t in one pass,
// both forwards per resident block); PyTorch's is MeZO's (four in-place passes of torch.normal).
// Each case runs in its own child process for a per-case peak RSS. Last line: one JSON object.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "runtime/base/thread_pool.h"
#include "runtime/model/transformer.h"
#include "runtime/testing/bench_util.h"
#include "runtime/zo/zo_kernels.h"
#include "runtime/zo/zo_optimizer.h"

ABSL_FLAG(std::string, mode, "all", "all | zo (one case in-process)");
ABSL_FLAG(int, steps, 3, "Timed steps per case (after one warm-up step); the median counts.");
ABSL_FLAG(int, threads, 2, "Compute threads for Strata and PyTorch.");
ABSL_FLAG(int, batch, 4, "Sequences per step.");
ABSL_FLAG(int, seq, 256, "Tokens per sequence.");
ABSL_FLAG(bool, torch, true, "Also run the PyTorch MeZO peer.");

namespace strata {
namespace {

int RunZoCase() {
  const int B = absl::GetFlag(FLAGS_batch), T = absl::GetFlag(FLAGS_seq);
  Transformer::Options options;
  options.threads = absl::GetFlag(FLAGS_threads);
  auto model = Transformer::Create(Gpt2SmallConfig(), options);
  if (!model.ok()) return 1;
  (*model)->InitializeParameters(1);
  zo::ZoConfig config;
  config.seed = 1;
  auto opt = zo::ZoOptimizer::Create(model->get(), config);
  if (!opt.ok()) return 1;
  std::mt19937 rng(0);
  std::vector<int32_t> tokens(B * T), targets(B * T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % 50257);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % 50257);
  std::vector<double> times;
  // Step 1 has no pending update; from step 2 on every step carries the fused update.
  for (int step = 1; step <= absl::GetFlag(FLAGS_steps) + 1; ++step) {
    const auto start = std::chrono::steady_clock::now();
    if (!(*opt)->Step(tokens, targets, B, T, step, 1e-6).ok()) return 1;
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "strata zo step %d: %.3f s\n", step, s);
    if (step > 1) times.push_back(s);
  }
  std::printf("{\"tok_s\": %.3f}\n", B * T / bench::Median(times));
  return 0;
}

// Normals per second on one thread, best of 3 over 16M values.
double NormalsPerSecondPerCore() {
  ThreadPool& pool = ThreadPool::Global();
  const int threads = pool.threads();
  pool.SetThreads(1);
  const int64_t n = int64_t{1} << 24;
  std::vector<float> z(n);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    zo::GenerateNoise(z.data(), 0, n, 0,
                      zo::NoiseKey{static_cast<uint64_t>(rep), 0, zo::Distribution::kGaussian});
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, n / s);
  }
  pool.SetThreads(threads);
  return best;
}

int RunAll() {
  const int threads = absl::GetFlag(FLAGS_threads), steps = absl::GetFlag(FLAGS_steps);
  const int B = absl::GetFlag(FLAGS_batch), T = absl::GetFlag(FLAGS_seq);
  const double normals = NormalsPerSecondPerCore();
  std::fprintf(stderr,
               "zo_step_bench: GPT-2 small, B=%d T=%d, %d threads, noise kernels %s: "
               "%.0f M normals/s per core\n",
               B, T, threads, zo::ZoKernelIsa(), normals / 1e6);
  const std::vector<std::string> self = {"/proc/self/exe",
                                         "--mode=zo",
                                         absl::StrCat("--threads=", threads),
                                         absl::StrCat("--steps=", steps),
                                         absl::StrCat("--batch=", B),
                                         absl::StrCat("--seq=", T)};
  std::string config = ToHfConfigJson(Gpt2SmallConfig());
  config.erase(std::remove(config.begin(), config.end(), '\n'), config.end());
  const std::vector<std::string> torch = {"/usr/bin/python3",
                                          "runtime/zo/testing/torch_mezo_bench.py",
                                          absl::StrCat("--threads=", threads),
                                          absl::StrCat("--steps=", steps),
                                          absl::StrCat("--B=", B),
                                          absl::StrCat("--T=", T),
                                          "--config=" + config};
  const bench::ChildResult zo = bench::RunChild(self);
  bench::ChildResult mezo;
  if (absl::GetFlag(FLAGS_torch)) mezo = bench::RunChild(torch);
  if (!zo.ok) {
    std::fprintf(stderr, "zo_step_bench: the Strata case failed\n");
    return 1;
  }
  const double ratio = mezo.value > 0 ? zo.value / mezo.value : 0;
  std::fprintf(
      stderr, "MeZO step: strata %.1f tok/s (%.2f s)  torch %.1f tok/s (%.2f s)  ratio %.2fx\n",
      zo.value, B * T / zo.value, mezo.value, mezo.value > 0 ? B * T / mezo.value : 0, ratio);
  std::fprintf(stderr, "peak RSS: strata %.0f MB  torch %.0f MB\n", zo.rss_mb, mezo.rss_mb);
  std::printf(
      "{\"zo_tok_s\": %.2f, \"torch_mezo_tok_s\": %.2f, \"ratio\": %.3f, "
      "\"normals_per_s_per_core\": %.0f, \"rss_mb\": %.0f, \"torch_rss_mb\": %.0f, "
      "\"threads\": %d, \"isa\": \"%s\"}\n",
      zo.value, mezo.value, ratio, normals, zo.rss_mb, mezo.rss_mb, threads, zo::ZoKernelIsa());
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "zo") return strata::RunZoCase();
  if (mode != "all") {
    std::fprintf(stderr, "--mode must be all or zo\n");
    return 2;
  }
  return strata::RunAll();
}
