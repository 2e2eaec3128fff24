// offload_lora_bench: ZO-LoRA over a base that does not fit the memory budget, each case in its
// own child process for its peak RSS, blocks under --dir (this machine's disk).
// Part (b): the 2.05B-parameter LLaMA shape (offload_zo_bench's) built straight onto NVMe, fp32,
// batch 1 x 128, a 2 GiB working-set budget: full offloaded ZO (every block read and
// written back each step) against offloaded ZO-LoRA (r 8, alpha 16 on q and v: every block read
// once, none written), bytes moved per step, and the LoRA step against its bound
// max(compute, I/O): compute = the same ZO-LoRA steps with the model in memory, I/O = one
// read-only pass over the blocks.
// Part (c): a 6.7B-parameter LLaMA-2-7B-shaped model, its blocks built as bf16 on NVMe without
// ever being in RAM (13.5 GB of block files), fine-tuned with ZO-LoRA under a 2.3 GiB budget:
// step time, bytes per step and peak RSS (the target: under 2.5 GiB).
//   bazel run -c opt //runtime/offload:offload_lora_bench
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "runtime/offload/offloaded_zo.h"
#include "runtime/peft/lora_adapters.h"
#include "runtime/peft/zo_adapters.h"
#include "runtime/testing/bench_models.h"
#include "runtime/testing/bench_util.h"

ABSL_FLAG(std::string, mode, "all",
          "all | full | lora | lora_inmem | big7b (one case in this process)");
ABSL_FLAG(std::string, dir, "/var/tmp", "Directory for the block files (a real disk).");
ABSL_FLAG(int, steps, 2, "Timed steps after one warm-up; the median counts.");
ABSL_FLAG(int, threads, 2, "Compute threads.");
ABSL_FLAG(bool, big7b, true, "Run part (c) (writes 13.5 GB of block files).");

namespace strata {
namespace {

constexpr int64_t kTwoGiB = int64_t{2} << 30;
constexpr int64_t k7bBudget = int64_t{2355} << 20;  // 2.3 GiB.

using bench::Llama2B;
using bench::Llama7B;

double Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::unique_ptr<LoraAdapters> MezoLora(const Transformer& model) {
  LoraConfig config;  // r 8, alpha 16.
  config.target_modules = DefaultLoraTargets(model.config().family);
  auto lora = *LoraAdapters::Create(model.layout(), config);
  lora->Initialize(2);
  return lora;
}

// Weights for throughput: uniform in +-0.02 (norms 1) from a cheap hash of (tensor, index),
// about 1 ns an element where the seeded normal initialization takes ~90: the 2B and 7B models
// are built in seconds, not minutes. What the steps compute does not depend on the values.
void FillForSpeed(const TensorInfo& t, float* out) {
  if (t.role == TensorRole::kNorm) {
    std::fill(out, out + t.numel, 1.0f);
    return;
  }
  uint64_t state = 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(t.id + 1);
  for (int64_t i = 0; i < t.numel; ++i) {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    const uint32_t bits = static_cast<uint32_t>((state * 0x2545f4914f6cdd1dULL) >> 40);  // 24 bits.
    out[i] = (static_cast<float>(bits) * (1.0f / 16777216.0f) - 0.5f) * 0.04f;
  }
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "%s\n", status.ToString().c_str());
  return 1;
}

// One case in this process. Prints {"bytes_per_step": ..., "io_read_s": ..., "init_s": ...},
// then {"seconds": median step}.
int RunCase(const std::string& mode) {
  Transformer::Options options;
  options.threads = absl::GetFlag(FLAGS_threads);
  const bool big = mode == "big7b";
  const ModelConfig config = big ? Llama7B() : Llama2B();
  auto model = *Transformer::Create(config, options);
  zo::ZoConfig zo_config;
  zo_config.eps = 1e-2f;
  std::unique_ptr<LoraAdapters> lora;
  if (mode != "full") lora = MezoLora(*model);
  std::unique_ptr<OffloadedZo> offload;
  std::unique_ptr<ZoAdapters> in_memory;
  const std::string dir = absl::StrCat(absl::GetFlag(FLAGS_dir), "/strata_offload_lora_", mode);
  double init_s = 0, io_read_s = 0;
  const auto init_start = std::chrono::steady_clock::now();
  if (mode == "lora_inmem") {
    for (const TensorInfo& t : model->layout().tensors()) {
      FillForSpeed(t, model->params().data() + t.offset);
    }
    in_memory = *ZoAdapters::Create(model.get(), lora.get(), zo_config);
  } else {
    OffloadedZo::Options o;
    o.nvme_paths = {dir};
    // Straight onto NVMe, tensor by tensor through the staging slot: the blocks never occupy RAM.
    o.load_tensor = [&model](int id, float* out) {
      FillForSpeed(model->layout().tensor(id), out);
      return absl::OkStatus();
    };
    o.memory_budget_bytes = big ? k7bBudget : kTwoGiB;
    o.bf16_storage = big;
    o.adapters = lora.get();
    auto created = OffloadedZo::Create(model.get(), zo_config, o);
    if (!created.ok()) return Fail(created.status());
    offload = *std::move(created);
    init_s = Since(init_start);
    std::fprintf(stderr,
                 "%s: %.2fB params built onto NVMe in %.1f s (%.1f GB written), working set %.0f "
                 "MB, %d slots\n",
                 mode.c_str(), config.NumParameters() / 1e9, init_s, offload->bytes_written() / 1e9,
                 offload->working_set_bytes() / 1048576.0, offload->slots());
    if (lora != nullptr) {
      const auto io_start = std::chrono::steady_clock::now();
      if (absl::Status s = offload->IoOnlyPass(/*write_back=*/false); !s.ok()) return Fail(s);
      io_read_s = Since(io_start);
      std::fprintf(stderr, "%s: read-only pass over the blocks %.2f s\n", mode.c_str(), io_read_s);
    }
  }
  std::mt19937 rng(0);
  const int B = 1, T = 128;
  std::vector<int32_t> tokens(B * T), targets(B * T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % config.vocab_size);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % config.vocab_size);
  std::vector<double> times;
  int64_t moved = 0;
  for (int step = 1; step <= absl::GetFlag(FLAGS_steps) + 1; ++step) {
    const int64_t before =
        offload != nullptr ? offload->bytes_read() + offload->bytes_written() : 0;
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<zo::ZoStepRecord> record =
        offload != nullptr ? offload->Step(tokens, targets, B, T, step, 1e-4)
                           : in_memory->Step(tokens, targets, B, T, step, 1e-4);
    if (!record.ok()) return Fail(record.status());
    const double s = Since(start);
    if (offload != nullptr) moved = offload->bytes_read() + offload->bytes_written() - before;
    std::fprintf(stderr, "%s step %d: %.2f s, %.2f GB moved (loss %.4f)\n", mode.c_str(), step, s,
                 moved / 1e9, record->loss);
    if (step > 1) times.push_back(s);
  }
  offload.reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  // The figures, then the step time alone on the last line (bench::RunChild's value).
  std::printf("{\"bytes_per_step\": %lld, \"io_read_s\": %.4f, \"init_s\": %.2f}\n",
              static_cast<long long>(moved), io_read_s, init_s);
  std::printf("{\"seconds\": %.4f}\n", bench::Median(times));
  return 0;
}

int RunBench() {
  auto self = [](const std::string& mode) {
    return bench::RunChild({"/proc/self/exe", "--mode=" + mode, "--dir=" + absl::GetFlag(FLAGS_dir),
                            absl::StrCat("--steps=", absl::GetFlag(FLAGS_steps)),
                            absl::StrCat("--threads=", absl::GetFlag(FLAGS_threads))});
  };
  const bench::ChildResult full = self("full"), lora = self("lora"),
                           lora_inmem = self("lora_inmem");
  if (!full.ok || !lora.ok || !lora_inmem.ok) {
    std::fprintf(stderr, "offload_lora_bench: a part (b) case failed\n");
    return 1;
  }
  const double full_bytes = bench::NumberAfter(full.out, "bytes_per_step");
  const double lora_bytes = bench::NumberAfter(lora.out, "bytes_per_step");
  const double io_read_s = bench::NumberAfter(lora.out, "io_read_s");
  const double bound = std::max(lora_inmem.value, io_read_s);
  std::fprintf(stderr,
               "(b) 2.05B LLaMA shape, 2 GiB budget: full offloaded ZO %.2f s/step, %.2f GB "
               "moved (peak RSS %.0f MB); ZO-LoRA %.2f s/step, %.2f GB moved (%.2fx the bytes; "
               "peak RSS %.0f MB); bound max(compute %.2f s, read pass %.2f s): %.2fx\n",
               full.value, full_bytes / 1e9, full.rss_mb, lora.value, lora_bytes / 1e9,
               lora_bytes / full_bytes, lora.rss_mb, lora_inmem.value, io_read_s,
               lora.value / bound);
  bench::ChildResult big;
  if (absl::GetFlag(FLAGS_big7b)) {
    big = self("big7b");
    if (!big.ok) {
      std::fprintf(stderr, "offload_lora_bench: part (c) failed\n");
      return 1;
    }
    std::fprintf(stderr,
                 "(c) %.2fB LLaMA-2-7B shape, bf16 blocks on NVMe: ZO-LoRA %.2f s/step, %.2f GB "
                 "read per step, peak RSS %.0f MB (built in %.0f s)\n",
                 Llama7B().NumParameters() / 1e9, big.value,
                 bench::NumberAfter(big.out, "bytes_per_step") / 1e9, big.rss_mb,
                 bench::NumberAfter(big.out, "init_s"));
  }
  std::printf(
      "{\"offload_lora_step_s\": %.3f, \"offload_lora_bytes_per_step\": %.0f, "
      "\"offload_full_bytes_per_step\": %.0f, \"offload_lora_ratio_to_bound\": %.3f, "
      "\"offload_full_step_s\": %.3f, \"offload_lora_bytes_ratio\": %.3f, "
      "\"offload_lora_compute_s\": %.3f, \"offload_lora_read_pass_s\": %.3f, "
      "\"offload_lora_peak_rss_mb\": %.0f, \"offload_full_peak_rss_mb\": %.0f, "
      "\"big7b_params\": %lld, \"big7b_step_s\": %.3f, \"big7b_peak_rss_mb\": %.0f, "
      "\"big7b_bytes_per_step\": %.0f, \"big7b_build_s\": %.1f}\n",
      lora.value, lora_bytes, full_bytes, lora.value / bound, full.value, lora_bytes / full_bytes,
      lora_inmem.value, io_read_s, lora.rss_mb, full.rss_mb,
      static_cast<long long>(Llama7B().NumParameters()), big.value, big.rss_mb,
      bench::NumberAfter(big.out, "bytes_per_step"), bench::NumberAfter(big.out, "init_s"));
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "all") return strata::RunBench();
  for (const char* m : {"full", "lora", "lora_inmem", "big7b"}) {
    if (mode == m) return strata::RunCase(mode);
  }
  std::fprintf(stderr, "unknown --mode=%s\n", mode.c_str());
  return 2;
}
