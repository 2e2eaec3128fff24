// zero_offload_bench: (b) a first-order step of the GPT-2-small shape (124M parameters, batch
// 4 x 256, 2 threads) with the AdamW state in memory vs on NVMe (ZeRO-Infinity-style sub-groups
// through pinned slots, this machine's disk under --dir), each in its own process for its peak
// RSS; reports the optimizer-state bytes moved per step and the achieved GB/s. (c) The model
// state each rank holds for ZeRO stages 0-3 at N = 1, 2, 4 (stages 0-2: parameters and gradients
// fp32, plus the AdamW state the optimizer allocates for that rank's partition; stage 3: the
// shard of all four), in bytes — and for stage 3, N real rank processes over Gloo training the
// same model (batch 1 x 128 each, shards initialized from the seed), with each rank's peak RSS.
//   bazel run -c opt //runtime/dist:zero_offload_bench
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "runtime/dist/zero3.h"
#include "runtime/dist/zero_adamw.h"
#include "runtime/model/transformer.h"
#include "runtime/testing/bench_util.h"

ABSL_FLAG(std::string, mode, "all", "all | memory | nvme | stage3 (one case in-process)");
ABSL_FLAG(int, ranks, 1, "stage3: ranks of the run.");
ABSL_FLAG(int, rank, 0, "stage3: this process's rank.");
ABSL_FLAG(std::string, rendezvous, "", "stage3: rendezvous directory.");
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

// One rank of a stage-3 run: two steps of batch 1 x 128, then its model state and working set.
int RunStage3Rank() {
  Transformer::Options options;
  options.threads = 1;  // Up to four ranks share the machine.
  auto model = *Transformer::Create(Gpt2SmallConfig(), options);
  GlooOptions gloo;
  gloo.rank = absl::GetFlag(FLAGS_rank);
  gloo.size = absl::GetFlag(FLAGS_ranks);
  gloo.store_dir = absl::GetFlag(FLAGS_rendezvous);
  gloo.timeout = absl::Minutes(5);
  absl::StatusOr<std::unique_ptr<Communicator>> comm = CreateGlooCommunicator(gloo);
  if (!comm.ok()) {
    std::fprintf(stderr, "%s\n", comm.status().ToString().c_str());
    return 1;
  }
  Zero3::Options zo;
  zo.adam.weight_decay = 0.1f;
  zo.grad_clip = 1.0f;
  auto zero =
      Zero3::Create(model->layout(), comm->get(), zo, [&](int64_t begin, int64_t end, float* out) {
        model->InitializeRange(1, begin, end, out);
        return absl::OkStatus();
      });
  if (!zero.ok()) return 1;
  constexpr int kRows = 128;
  std::mt19937 rng(gloo.rank);
  std::vector<int32_t> tokens(kRows), targets(kRows);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % 50257);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % 50257);
  for (int step = 0; step < 2; ++step) {
    if (!model->ForwardBackward(tokens, targets, 1, kRows, zero->get()).ok()) return 1;
    if (!(*zero)->Step(1e-4f).ok()) return 1;
  }
  std::printf("{\"model_state_bytes\": %lld, \"working_bytes\": %lld}\n",
              static_cast<long long>((*zero)->ModelStateBytes()),
              static_cast<long long>((*zero)->WorkingBytes()));
  std::printf("{\"ok\": 1}\n");  // RunChild reads one number from the last line.
  return 0;
}

// Runs a stage-3 job of `ranks` processes; returns rank 0's output and every rank's peak RSS.
std::vector<bench::ChildResult> RunStage3(int ranks) {
  const std::string rendezvous =
      absl::StrCat(absl::GetFlag(FLAGS_dir), "/strata_zero3_rv_", getpid(), "_", ranks);
  std::vector<bench::ChildResult> results(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      results[r] =
          bench::RunChild({"/proc/self/exe", "--mode=stage3", absl::StrCat("--ranks=", ranks),
                           absl::StrCat("--rank=", r), "--rendezvous=" + rendezvous});
    });
  }
  for (std::thread& t : threads) t.join();
  return results;
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
  // Stage 3: measured in real ranks.
  const double psi = static_cast<double>(n);
  std::string stage3_rss = "{";
  absl::StrAppend(&per_stage, ", \"stage3\": {");
  for (int ranks : {1, 2, 4}) {
    const std::vector<bench::ChildResult> rs = RunStage3(ranks);
    double peak = 0;
    for (const bench::ChildResult& r : rs) {
      if (!r.ok) {
        std::fprintf(stderr, "zero_offload_bench: a stage-3 rank failed\n");
        return 1;
      }
      peak = std::max(peak, r.rss_mb);
    }
    const double state = bench::NumberAfter(rs[0].out, "model_state_bytes");
    const double working = bench::NumberAfter(rs[0].out, "working_bytes");
    absl::StrAppend(&per_stage, ranks > 1 ? ", " : "", "\"N", ranks,
                    "\": ", static_cast<long long>(state));
    absl::StrAppend(&stage3_rss, ranks > 1 ? ", " : "", "\"N", ranks,
                    "\": ", static_cast<long long>(peak));
    std::fprintf(stderr,
                 "stage 3, %d rank(s): %.0f MB of model state per rank (16 psi / N = %.0f MB, "
                 "%+.2f%%), working set %.0f MB, peak RSS of the largest rank %.0f MB\n",
                 ranks, state / 1e6, 16 * psi / ranks / 1e6,
                 100.0 * (state / (16 * psi / ranks) - 1.0), working / 1e6, peak);
  }
  absl::StrAppend(&per_stage, "}}");
  absl::StrAppend(&stage3_rss, "}");
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
      "\"nvme_rss_mb\": %.0f, \"rank_model_state_bytes\": %s, \"stage3_peak_rss_mb\": %s}\n",
      memory.value, nvme.value, nvme.value / memory.value, memory_opt, nvme_opt,
      static_cast<long long>(bytes), nvme_opt > 0 ? bytes / nvme_opt / 1e9 : 0.0, memory.rss_mb,
      nvme.rss_mb, per_stage.c_str(), stage3_rss.c_str());
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "memory") return strata::RunCase(false);
  if (mode == "nvme") return strata::RunCase(true);
  if (mode == "stage3") return strata::RunStage3Rank();
  return strata::RunBench();
}
