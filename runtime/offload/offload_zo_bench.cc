// offload_zo_bench, part (a): a MeZO step of the GPT-2-large shape (774M parameters, 3.1 GB of
// fp32 weights) in memory vs with the blocks on the NVMe tier (this machine's disk under --dir)
// under a memory budget of a quarter of the model, same seeds, each in its own child process for
// its peak RSS. Reports the step times, bytes moved per step, the achieved GB/s, and the
// fraction of the I/O hidden behind compute:
//   hidden = 1 - (offload_step - inmem_step) / io_only_pass
// where io_only_pass is the time of reading and writing every block once without compute.
// Part (b): a 2.05B-parameter LLaMA-shaped model initialized straight onto NVMe and trained
// under a 2 GiB working-set budget (batch 1 x 128): step time, peak RSS, GB/s, and the step time
// relative to max(compute, I/O): compute = the same step with the model in memory, I/O = a
// read+write pass over all blocks without compute.
//   bazel run -c opt //runtime/offload:offload_zo_bench
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "runtime/offload/offloaded_zo.h"
#include "runtime/testing/bench_models.h"
#include "runtime/testing/bench_util.h"

ABSL_FLAG(std::string, mode, "all",
          "all | inmem | offload | io | big | big_inmem (one case in-process)");
ABSL_FLAG(bool, big, true, "Run part (b), the 2B-parameter model (~8 GB of block files).");
ABSL_FLAG(std::string, dir, "/var/tmp", "Directory for the block files (a real disk).");
ABSL_FLAG(int, steps, 3, "Timed steps after one warm-up; the median counts.");
ABSL_FLAG(int, threads, 2, "Compute threads.");
ABSL_FLAG(int, gpu, -1,
          "Run the offloaded cases' blocks on this CUDA device (the GPU stage; needs "
          "--config=cuda). -1: on the CPU.");

namespace strata {
namespace {

constexpr int kB = 4, kT = 256;

ModelConfig Gpt2Large() {
  ModelConfig c = Gpt2SmallConfig();
  c.n_layer = 36;
  c.n_head = 20;
  c.n_kv_head = 20;
  c.d_model = 1280;
  c.d_ff = 4 * 1280;
  return c;
}

// Part (a)'s budget: a quarter of the model's fp32 bytes.
int64_t QuarterOfModel() { return ParamLayout(Gpt2Large()).NumElements() * 4 / 4; }

ModelConfig BigLlama() { return bench::Llama2B(); }

constexpr int64_t kBigBudget = int64_t{2} << 30;

// Part (b)'s batch and its steps (the first is a warm-up); prints {"seconds": median}.
int TimeBigSteps(
    const std::function<absl::StatusOr<zo::ZoStepRecord>(
        const std::vector<int32_t>&, const std::vector<int32_t>&, int, int, int64_t)>& step_fn,
    const char* label) {
  std::mt19937 rng(0);
  const int B = 1, T = 128;
  std::vector<int32_t> tokens(B * T), targets(B * T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % 32000);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % 32000);
  std::vector<double> times;
  for (int step = 1; step <= 3; ++step) {
    const auto start = std::chrono::steady_clock::now();
    auto r = step_fn(tokens, targets, B, T, step);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "%s step %d: %.2f s (loss %.4f)\n", label, step, s, r->loss);
    if (step > 1) times.push_back(s);
  }
  std::printf("{\"seconds\": %.4f}\n", bench::Median(times));
  return 0;
}

// Part (b)'s compute time: the same steps with the model in memory.
int RunBigInMemory() {
  Transformer::Options options;
  options.threads = absl::GetFlag(FLAGS_threads);
  auto model = *Transformer::Create(BigLlama(), options);
  model->InitializeParameters(1);
  auto zo = *zo::ZoOptimizer::Create(model.get(), zo::ZoConfig());
  return TimeBigSteps(
      [&](const std::vector<int32_t>& tokens, const std::vector<int32_t>& targets, int B, int T,
          int64_t step) { return zo->Step(tokens, targets, B, T, step, 1e-7); },
      "big in memory");
}

// Part (b) in this process: prints {"io_s": ...} and {"seconds": median step}.
int RunBig() {
  Transformer::Options options;
  options.threads = absl::GetFlag(FLAGS_threads);
  auto model = *Transformer::Create(BigLlama(), options);
  OffloadedZo::Options o;
  o.nvme_paths = {absl::GetFlag(FLAGS_dir) + "/strata_offload_bench_big"};
  o.init_seed = 1;
  o.memory_budget_bytes = kBigBudget;
  o.gpu_device = absl::GetFlag(FLAGS_gpu);
  const auto init_start = std::chrono::steady_clock::now();
  auto created = OffloadedZo::Create(model.get(), zo::ZoConfig(), o);
  if (!created.ok()) {
    std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr,
               "big: %.2fB params initialized onto NVMe in %.1f s, working set %.0f MB, "
               "%d slots\n",
               model->config().NumParameters() / 1e9,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - init_start).count(),
               (*created)->working_set_bytes() / 1048576.0, (*created)->slots());
  const auto io_start = std::chrono::steady_clock::now();
  if (!(*created)->IoOnlyPass().ok()) return 1;
  const double io_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - io_start).count();
  std::fprintf(stderr, "big: read+write pass without compute %.2f s\n", io_s);
  std::printf("{\"io_s\": %.3f}\n", io_s);
  return TimeBigSteps(
      [&](const std::vector<int32_t>& tokens, const std::vector<int32_t>& targets, int B, int T,
          int64_t step) { return (*created)->Step(tokens, targets, B, T, step, 1e-7); },
      "big");
}

int RunCase(const std::string& mode) {
  Transformer::Options options;
  options.threads = absl::GetFlag(FLAGS_threads);
  auto model = *Transformer::Create(Gpt2Large(), options);
  zo::ZoConfig config;
  config.seed = 1;
  std::unique_ptr<zo::ZoOptimizer> in_memory;
  std::unique_ptr<OffloadedZo> offload;
  if (mode == "inmem") {
    model->InitializeParameters(1);
    in_memory = *zo::ZoOptimizer::Create(model.get(), config);
  } else {
    OffloadedZo::Options o;
    o.nvme_paths = {absl::GetFlag(FLAGS_dir) + "/strata_offload_bench"};
    o.init_seed = 1;  // Straight onto NVMe: the blocks never occupy RAM.
    o.memory_budget_bytes = QuarterOfModel();
    o.gpu_device = absl::GetFlag(FLAGS_gpu);
    auto created = OffloadedZo::Create(model.get(), config, o);
    if (!created.ok()) {
      std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
      return 1;
    }
    offload = *std::move(created);
    std::fprintf(stderr, "%s: working set %.0f MB (budget %.0f MB), %d slots\n", mode.c_str(),
                 offload->working_set_bytes() / 1048576.0, QuarterOfModel() / 1048576.0,
                 offload->slots());
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
  const ModelConfig config = Gpt2Large();
  const ParamLayout layout(config);
  auto self = [](const std::string& mode) {
    return std::vector<std::string>{"/proc/self/exe",
                                    "--mode=" + mode,
                                    "--dir=" + absl::GetFlag(FLAGS_dir),
                                    absl::StrCat("--steps=", absl::GetFlag(FLAGS_steps)),
                                    absl::StrCat("--threads=", absl::GetFlag(FLAGS_threads)),
                                    absl::StrCat("--gpu=", absl::GetFlag(FLAGS_gpu))};
  };
  const bench::ChildResult inmem = bench::RunChild(self("inmem"));
  const bench::ChildResult offload = bench::RunChild(self("offload"));
  const bench::ChildResult io = bench::RunChild(self("io"));
  if (!inmem.ok || !offload.ok || !io.ok) {
    std::fprintf(stderr, "offload_zo_bench: a case failed\n");
    return 1;
  }
  bench::ChildResult big, big_inmem;
  double big_io_s = 0;
  if (absl::GetFlag(FLAGS_big)) {
    big = bench::RunChild(self("big"));
    big_inmem = bench::RunChild(self("big_inmem"));
    if (!big.ok || !big_inmem.ok) {
      std::fprintf(stderr, "offload_zo_bench: part (b) failed\n");
      return 1;
    }
    big_io_s = bench::NumberAfter(big.out, "io_s");
  }
  const double big_bound = std::max(big_inmem.value, big_io_s);
  const ModelConfig big_config = BigLlama();
  const double big_bytes = 2.0 * ParamLayout(big_config).BlockElements() * 4.0 * big_config.n_layer;
  const double block_bytes = TensorStore::Padded(layout.BlockElements() * 4);
  const double bytes_per_step = 2.0 * config.n_layer * block_bytes;  // Read + write each block.
  const double model_mb = layout.NumElements() * 4.0 / (1 << 20);
  const double hidden =
      std::min(1.0, std::max(0.0, 1.0 - (offload.value - inmem.value) / io.value));
  std::fprintf(stderr,
               "(a) GPT-2 large: in memory %.3f s/step, NVMe tier %.3f s/step (ratio %.2f), I/O "
               "alone %.3f s; %.0f MB moved per step = %.2f GB/s; %.0f%% of the I/O hidden; peak "
               "RSS %.0f MB under a %.0f MB budget (in memory %.0f MB), model %.0f MB\n",
               inmem.value, offload.value, offload.value / inmem.value, io.value,
               bytes_per_step / 1e6, bytes_per_step / offload.value / 1e9, 100 * hidden,
               offload.rss_mb, QuarterOfModel() / 1048576.0, inmem.rss_mb, model_mb);
  if (absl::GetFlag(FLAGS_big)) {
    std::fprintf(stderr,
                 "(b) 2.05B LLaMA shape: %.2f s/step on NVMe (peak RSS %.0f MB, 2 GiB budget), "
                 "%.2f s in memory (peak RSS %.0f MB), I/O alone %.2f s: %.2fx max(compute, "
                 "I/O)\n",
                 big.value, big.rss_mb, big_inmem.value, big_inmem.rss_mb, big_io_s,
                 big.value / big_bound);
  }
  std::printf(
      "{\"inmem_step_s\": %.4f, \"offload_step_s\": %.4f, \"ratio\": %.3f, "
      "\"io_only_s\": %.4f, \"bytes_per_step\": %.0f, \"gbps\": %.3f, "
      "\"hidden_fraction\": %.3f, \"peak_rss_mb\": %.0f, \"inmem_peak_rss_mb\": %.0f, "
      "\"budget_mb\": %.0f, \"model_mb\": %.0f, \"big_model_params\": %lld, "
      "\"big_step_s\": %.3f, \"big_peak_rss_mb\": %.0f, \"big_budget_mb\": %.0f, "
      "\"big_gbps\": %.3f, \"big_inmem_step_s\": %.3f, \"big_io_only_s\": %.3f, "
      "\"big_ratio_to_bound\": %.3f}\n",
      inmem.value, offload.value, offload.value / inmem.value, io.value, bytes_per_step,
      bytes_per_step / offload.value / 1e9, hidden, offload.rss_mb, inmem.rss_mb,
      QuarterOfModel() / 1048576.0, model_mb, static_cast<long long>(big_config.NumParameters()),
      big.value, big.rss_mb, kBigBudget / 1048576.0,
      big.value > 0 ? big_bytes / big.value / 1e9 : 0.0, big_inmem.value, big_io_s,
      big_bound > 0 ? big.value / big_bound : 0.0);
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "inmem" || mode == "offload" || mode == "io") return strata::RunCase(mode);
  if (mode == "big") return strata::RunBig();
  if (mode == "big_inmem") return strata::RunBigInMemory();
  return strata::RunBench();
}
