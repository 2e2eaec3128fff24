// offload_zo_bench, part (a): a MeZO step of the GPT-2-small shape in memory vs with the blocks
// on the NVMe tier (this machine's disk under --dir), same seeds, each in its own child process
// for its peak RSS. Reports the step times, bytes moved per step, the achieved GB/s, and the
// fraction of the I/O hidden behind compute:
//   hidden = 1 - (offload_step - inmem_step) / io_only_pass
// where io_only_pass is the time of reading and writing every block once without compute.
// Part (b) (a >= 2B-parameter model under a 2 GiB budget) is not implemented yet.
//   bazel run -c opt //runtime/offload:offload_zo_bench
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "runtime/offload/offloaded_zo.h"
#include "runtime/testing/bench_util.h"

ABSL_FLAG(std::string, mode, "all", "all | inmem | offload | io (one case in-process)");
ABSL_FLAG(std::string, dir, "/var/tmp", "Directory for the block files (a real disk).");
ABSL_FLAG(int, steps, 3, "Timed steps after one warm-up; the median counts.");
ABSL_FLAG(int, threads, 2, "Compute threads.");

namespace strata {
namespace {

constexpr int kB = 4, kT = 256;

int RunCase(const std::string& mode) {
  Transformer::Options options;
  options.threads = absl::GetFlag(FLAGS_threads);
  auto model = *Transformer::Create(Gpt2SmallConfig(), options);
  model->InitializeParameters(1);
  zo::ZoConfig config;
  config.seed = 1;
  std::unique_ptr<zo::ZoOptimizer> in_memory;
  std::unique_ptr<OffloadedZo> offload;
  if (mode == "inmem") {
    in_memory = *zo::ZoOptimizer::Create(model.get(), config);
  } else {
    OffloadedZo::Options o;
    o.nvme_paths = {absl::GetFlag(FLAGS_dir) + "/strata_offload_bench"};
    auto created = OffloadedZo::Create(model.get(), config, o);
    if (!created.ok()) {
      std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
      return 1;
    }
    offload = *std::move(created);
  }
  std::mt19937 rng(0);
  std::vector<int32_t> tokens(kB * kT), targets(kB * kT);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % 50257);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % 50257);
  std::vector<double> times;
  for (int step = 1; step <= absl::GetFlag(FLAGS_steps) + 1; ++step) {
    const auto start = std::chrono::steady_clock::now();
    absl::Status status;
    if (mode == "io") {
      status = offload->IoOnlyPass();
    } else if (mode == "inmem") {
      status = in_memory->Step(tokens, targets, kB, kT, step, 1e-6).status();
    } else {
      status = offload->Step(tokens, targets, kB, kT, step, 1e-6).status();
    }
    if (!status.ok()) {
      std::fprintf(stderr, "%s\n", status.ToString().c_str());
      return 1;
    }
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "%s step %d: %.3f s\n", mode.c_str(), step, s);
    if (step > 1) times.push_back(s);
  }
  std::printf("{\"seconds\": %.4f}\n", bench::Median(times));
  return 0;
}

int RunBench() {
  const ModelConfig config = Gpt2SmallConfig();
  const ParamLayout layout(config);
  auto self = [](const std::string& mode) {
    return std::vector<std::string>{"/proc/self/exe", "--mode=" + mode,
                                    "--dir=" + absl::GetFlag(FLAGS_dir),
                                    absl::StrCat("--steps=", absl::GetFlag(FLAGS_steps)),
                                    absl::StrCat("--threads=", absl::GetFlag(FLAGS_threads))};
  };
  const bench::ChildResult inmem = bench::RunChild(self("inmem"));
  const bench::ChildResult offload = bench::RunChild(self("offload"));
  const bench::ChildResult io = bench::RunChild(self("io"));
  if (!inmem.ok || !offload.ok || !io.ok) {
    std::fprintf(stderr, "offload_zo_bench: a case failed\n");
    return 1;
  }
  const double block_bytes = TensorStore::Padded(layout.BlockElements() * 4);
  const double bytes_per_step = 2.0 * config.n_layer * block_bytes;  // Read + write each block.
  const double model_mb = layout.NumElements() * 4.0 / (1 << 20);
  const double hidden =
      std::min(1.0, std::max(0.0, 1.0 - (offload.value - inmem.value) / io.value));
  std::fprintf(stderr,
               "in memory %.3f s/step, NVMe tier %.3f s/step (ratio %.2f), I/O alone %.3f s; "
               "%.0f MB moved per step = %.2f GB/s; %.0f%% of the I/O hidden; peak RSS %.0f MB "
               "(in memory %.0f MB), model %.0f MB\n",
               inmem.value, offload.value, offload.value / inmem.value, io.value,
               bytes_per_step / 1e6, bytes_per_step / offload.value / 1e9, 100 * hidden,
               offload.rss_mb, inmem.rss_mb, model_mb);
  std::printf(
      "{\"inmem_step_s\": %.4f, \"offload_step_s\": %.4f, \"ratio\": %.3f, "
      "\"io_only_s\": %.4f, \"bytes_per_step\": %.0f, \"gbps\": %.3f, "
      "\"hidden_fraction\": %.3f, \"peak_rss_mb\": %.0f, \"inmem_peak_rss_mb\": %.0f, "
      "\"budget_mb\": null, \"model_mb\": %.0f}\n",
      inmem.value, offload.value, offload.value / inmem.value, io.value, bytes_per_step,
      bytes_per_step / offload.value / 1e9, hidden, offload.rss_mb, inmem.rss_mb, model_mb);
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "inmem" || mode == "offload" || mode == "io") return strata::RunCase(mode);
  return strata::RunBench();
}
