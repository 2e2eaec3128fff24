// zero_offload_bench: (b) a first-order step of the GPT-2-small shape (124M parameters, batch
// 4 x 256, 2 threads) with the AdamW state in memory vs on NVMe (ZeRO-Infinity-style sub-groups
// through pinned slots, this machine's disk under --dir), each in its own process for its peak
// RSS; reports the optimizer-state bytes moved per step and the achieved GB/s. (c) The model
// state each rank holds for ZeRO stages 0-2 at N = 1, 2, 4 (parameters and gradients fp32, plus
// the AdamW state the optimizer allocates for that rank's partition), in bytes.
//   bazel run -c opt //runtime/dist:zero_offload_bench
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "runtime/dist/zero_adamw.h"
#include "runtime/model/transformer.h"
#include "runtime/testing/bench_util.h"

ABSL_FLAG(std::string, mode, "all", "all | memory | nvme (one case in-process)");
ABSL_FLAG(std::string, dir, "/var/tmp", "Directory for the optimizer-state files (a real disk).");
ABSL_FLAG(int, steps, 3, "Timed steps after one warm-up; the median counts.");
ABSL_FLAG(int, threads, 2, "Compute threads.");

namespace strata {
namespace {

constexpr int kB = 4, kT = 256;

// A communicator that only answers rank() and size(): (c) sizes partitions without running
// collectives.
class SizingCommunicator : public Communicator {
 public:
  SizingCommunicator(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  absl::Status AllReduceSum(absl::Span<float>) override { return Unused(); }
  absl::Status ReduceScatterSum(absl::Span<const float>, absl::Span<float>) override {
    return Unused();
  }
  absl::Status AllGather(absl::Span<const float>, absl::Span<float>) override { return Unused(); }
  absl::Status Broadcast(absl::Span<float>, int) override { return Unused(); }
  absl::Status Barrier() override { return Unused(); }
  Handle Async(std::function<absl::Status(Communicator&)>) override { return Handle(); }

 private:
  static absl::Status Unused() { return absl::UnimplementedError("sizing only"); }
  int rank_, size_;
};

int RunCase(bool nvme) {
  Transformer::Options options;
  options.threads = absl::GetFlag(FLAGS_threads);
  auto model = *Transformer::Create(Gpt2SmallConfig(), options);
  model->InitializeParameters(1);
  ZeroAdamW::Options zo;
  zo.adam.weight_decay = 0.1f;
  zo.grad_clip = 1.0f;
  if (nvme) zo.state_nvme_paths = {absl::GetFlag(FLAGS_dir) + "/strata_zero_offload_bench"};
  auto adam = ZeroAdamW::Create(model->layout(), nullptr, zo);
  if (!adam.ok()) {
    std::fprintf(stderr, "%s\n", adam.status().ToString().c_str());
    return 1;
  }
  std::mt19937 rng(0);
  std::vector<int32_t> tokens(kB * kT), targets(kB * kT);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % 50257);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % 50257);
  std::vector<double> times, optimizer_times;
  for (int step = 0; step <= absl::GetFlag(FLAGS_steps); ++step) {
    const auto start = std::chrono::steady_clock::now();
    model->ZeroGrads();
    if (!model->ForwardBackward(tokens, targets, kB, kT).ok()) return 1;
    const auto mid = std::chrono::steady_clock::now();
    absl::StatusOr<double> norm = (*adam)->Step(model->params(), model->grads(), 1e-4f);
    if (!norm.ok()) {
      std::fprintf(stderr, "%s\n", norm.status().ToString().c_str());
      return 1;
    }
    const auto end = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(end - start).count();
    std::fprintf(stderr, "%s step %d: %.3f s (optimizer %.3f s)\n", nvme ? "nvme" : "memory", step,
                 s, std::chrono::duration<double>(end - mid).count());
    if (step > 0) {
      times.push_back(s);
      optimizer_times.push_back(std::chrono::duration<double>(end - mid).count());
    }
  }
  std::printf("{\"optimizer_s\": %.4f}\n", bench::Median(optimizer_times));
  std::printf("{\"seconds\": %.4f}\n", bench::Median(times));
  return 0;
}

int RunBench() {
  auto self = [](const std::string& mode) {
    return std::vector<std::string>{"/proc/self/exe", "--mode=" + mode,
                                    "--dir=" + absl::GetFlag(FLAGS_dir),
                                    absl::StrCat("--steps=", absl::GetFlag(FLAGS_steps)),
                                    absl::StrCat("--threads=", absl::GetFlag(FLAGS_threads))};
  };
  const bench::ChildResult memory = bench::RunChild(self("memory"));
  const bench::ChildResult nvme = bench::RunChild(self("nvme"));
  if (!memory.ok || !nvme.ok) {
    std::fprintf(stderr, "zero_offload_bench: a case failed\n");
    return 1;
  }
  const ParamLayout layout(Gpt2SmallConfig());
  const int64_t n = layout.NumElements();
  // m and v read and written once per step, in 4096-byte-padded sub-groups.
  const int64_t sub = int64_t{4} << 20;
  int64_t bytes = 0;
  for (int64_t b = 0; b < n; b += sub) bytes += 2 * TensorStore::Padded(8 * std::min(sub, n - b));
  const double memory_opt = bench::NumberAfter(memory.out, "optimizer_s");
  const double nvme_opt = bench::NumberAfter(nvme.out, "optimizer_s");
  std::string per_stage = "{";
  for (int stage = 0; stage <= 2; ++stage) {
    absl::StrAppend(&per_stage, stage > 0 ? ", " : "", "\"stage", stage, "\": {");
    for (int ranks : {1, 2, 4}) {
      SizingCommunicator comm(0, ranks);
      ZeroAdamW::Options o;
      o.stage = stage;
      auto z = *ZeroAdamW::Create(layout, &comm, o);
      // Parameters and gradients are full fp32 copies on every rank at these stages.
      const int64_t state = 8 * n + z->OptimizerStateBytes();
      absl::StrAppend(&per_stage, ranks > 1 ? ", " : "", "\"N", ranks, "\": ", state);
      std::fprintf(stderr, "stage %d, %d rank(s): %.0f MB of model state per rank\n", stage, ranks,
                   state / 1e6);
    }
    absl::StrAppend(&per_stage, "}");
  }
  absl::StrAppend(&per_stage, "}");
  std::fprintf(stderr,
               "FO step, GPT-2 small, batch %dx%d: optimizer state in memory %.3f s/step "
               "(AdamW %.3f s), on NVMe %.3f s/step (AdamW %.3f s) = %.2fx; %.0f MB of state "
               "moved per step = %.2f GB/s during the AdamW pass; peak RSS %.0f vs %.0f MB\n",
               kB, kT, memory.value, memory_opt, nvme.value, nvme_opt, nvme.value / memory.value,
               bytes / 1e6, nvme_opt > 0 ? bytes / nvme_opt / 1e9 : 0.0, memory.rss_mb,
               nvme.rss_mb);
  std::printf(
      "{\"inmem_step_s\": %.4f, \"nvme_step_s\": %.4f, \"ratio\": %.3f, \"inmem_adam_s\": %.4f, "
      "\"nvme_adam_s\": %.4f, \"bytes_per_step\": %lld, \"gbps\": %.3f, \"inmem_rss_mb\": %.0f, "
      "\"nvme_rss_mb\": %.0f, \"rank_model_state_bytes\": %s}\n",
      memory.value, nvme.value, nvme.value / memory.value, memory_opt, nvme_opt,
      static_cast<long long>(bytes), nvme_opt > 0 ? bytes / nvme_opt / 1e9 : 0.0, memory.rss_mb,
      nvme.rss_mb, per_stage.c_str());
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "memory") return strata::RunCase(false);
  if (mode == "nvme") return strata::RunCase(true);
  return strata::RunBench();
}
