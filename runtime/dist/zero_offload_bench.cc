// zero_offload_bench: (b) a first-order step of the GPT-2-small shape (124M parameters, batch
// 4 x 256, 2 threads) with the AdamW state in memory vs on NVMe (ZeRO-Infinity-style sub-groups
// through pinned slots, this machine's disk under --dir), each in its own process for its peak
// RSS; reports the optimizer-state bytes moved per step and the achieved GB/s. (c) The model
// state each rank holds for ZeRO stages 0-3 at N = 1, 2, 4 (stages 0-1: parameters and gradients
// fp32, plus the AdamW state the optimizer allocates for that rank's partition; stage 2: whole
// fp32 weights plus the partitioned gradient and state; stage 3: the shard of all four), in
// bytes — and for stage 3, N real rank processes over Gloo training the
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
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "runtime/dist/zero3.h"
#include "runtime/dist/zero_adamw.h"
#include "runtime/model/transformer.h"
#include "runtime/testing/bench_util.h"

ABSL_FLAG(std::string, mode, "all",
          "all | memory | nvme | stage3 | stage3_nvme | stage3_rank (one case in-process)");
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

// One FO step case in this process: `mode` memory | nvme (AdamW state on NVMe, ZeroAdamW) |
// stage3 | stage3_nvme (one-process ZeRO-3, its weight shard and state on NVMe).
int RunCase(const std::string& mode) {
  Transformer::Options options;
  options.threads = absl::GetFlag(FLAGS_threads);
  auto model = *Transformer::Create(Gpt2SmallConfig(), options);
  const bool stage3 = absl::StartsWith(mode, "stage3");
  const bool nvme = absl::EndsWith(mode, "nvme");
  const std::string dir = absl::GetFlag(FLAGS_dir) + "/strata_zero_offload_bench";
  std::unique_ptr<ZeroAdamW> adam;
  std::unique_ptr<Zero3> zero3;
  absl::Status created;
  if (stage3) {
    Zero3::Options o;
    o.adam.weight_decay = 0.1f;
    o.grad_clip = 1.0f;
    if (nvme) {
      o.nvme_paths = {dir};
      o.offload_params = o.offload_state = true;
    }
    absl::StatusOr<std::unique_ptr<Zero3>> z =
        Zero3::Create(model->layout(), nullptr, o, [&](int64_t begin, int64_t end, float* out) {
          model->InitializeRange(1, begin, end, out);
          return absl::OkStatus();
        });
    created = z.status();
    if (z.ok()) zero3 = *std::move(z);
  } else {
    model->InitializeParameters(1);
    ZeroAdamW::Options zo;
    zo.adam.weight_decay = 0.1f;
    zo.grad_clip = 1.0f;
    if (nvme) zo.state_nvme_paths = {dir};
    absl::StatusOr<std::unique_ptr<ZeroAdamW>> z = ZeroAdamW::Create(model->layout(), nullptr, zo);
    created = z.status();
    if (z.ok()) adam = *std::move(z);
  }
  if (!created.ok()) {
    std::fprintf(stderr, "%s\n", created.ToString().c_str());
    return 1;
  }
  std::mt19937 rng(0);
  std::vector<int32_t> tokens(kB * kT), targets(kB * kT);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % 50257);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % 50257);
  std::vector<double> times, optimizer_times;
  int64_t io_bytes = 0;
  for (int step = 0; step <= absl::GetFlag(FLAGS_steps); ++step) {
    const int64_t io_before =
        zero3 != nullptr ? zero3->nvme_bytes_read() + zero3->nvme_bytes_written() : 0;
    const auto start = std::chrono::steady_clock::now();
    if (zero3 == nullptr) model->ZeroGrads();
    if (!model->ForwardBackward(tokens, targets, kB, kT, zero3.get()).ok()) return 1;
    const auto mid = std::chrono::steady_clock::now();
    absl::StatusOr<double> norm =
        zero3 != nullptr ? zero3->Step(1e-4f) : adam->Step(model->params(), model->grads(), 1e-4f);
    if (!norm.ok()) {
      std::fprintf(stderr, "%s\n", norm.status().ToString().c_str());
      return 1;
    }
    const auto end = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(end - start).count();
    std::fprintf(stderr, "%s step %d: %.3f s (optimizer %.3f s)\n", mode.c_str(), step, s,
                 std::chrono::duration<double>(end - mid).count());
    if (step > 0) {
      times.push_back(s);
      optimizer_times.push_back(std::chrono::duration<double>(end - mid).count());
      if (zero3 != nullptr) {
        io_bytes = zero3->nvme_bytes_read() + zero3->nvme_bytes_written() - io_before;
      }
    }
  }
  std::printf("{\"optimizer_s\": %.4f}\n", bench::Median(optimizer_times));
  std::printf("{\"io_bytes\": %lld}\n", static_cast<long long>(io_bytes));
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
          bench::RunChild({"/proc/self/exe", "--mode=stage3_rank", absl::StrCat("--ranks=", ranks),
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
  const bench::ChildResult s3_memory = bench::RunChild(self("stage3"));
  const bench::ChildResult s3_nvme = bench::RunChild(self("stage3_nvme"));
  if (!memory.ok || !nvme.ok || !s3_memory.ok || !s3_nvme.ok) {
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
      int64_t state = 0;
      if (stage == 2) {
        // Zero3 with whole weights: fp32 weights everywhere, gradients and m, v partitioned.
        state = 4 * n + 12 * Zero3::ShardElements(layout, ranks);
      } else {
        SizingCommunicator comm(0, ranks);
        ZeroAdamW::Options o;
        o.stage = stage;
        auto z = *ZeroAdamW::Create(layout, &comm, o);
        // Parameters and gradients are full fp32 copies on every rank at these stages.
        state = 8 * n + z->OptimizerStateBytes();
      }
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
  const double s3_io = bench::NumberAfter(s3_nvme.out, "io_bytes");
  std::fprintf(stderr,
               "(d) ZeRO-3 in one process, GPT-2 small, batch %dx%d: weights and state in memory "
               "%.3f s/step (AdamW %.3f s), on NVMe %.3f s/step (AdamW %.3f s) = %.2fx; %.0f MB "
               "moved per step; peak RSS %.0f vs %.0f MB\n",
               kB, kT, s3_memory.value, bench::NumberAfter(s3_memory.out, "optimizer_s"),
               s3_nvme.value, bench::NumberAfter(s3_nvme.out, "optimizer_s"),
               s3_nvme.value / s3_memory.value, s3_io / 1e6, s3_memory.rss_mb, s3_nvme.rss_mb);
  std::printf(
      "{\"inmem_step_s\": %.4f, \"nvme_step_s\": %.4f, \"ratio\": %.3f, \"inmem_adam_s\": %.4f, "
      "\"nvme_adam_s\": %.4f, \"bytes_per_step\": %lld, \"gbps\": %.3f, \"inmem_rss_mb\": %.0f, "
      "\"nvme_rss_mb\": %.0f, \"rank_model_state_bytes\": %s, \"stage3_peak_rss_mb\": %s, "
      "\"stage3_inmem_step_s\": %.4f, \"stage3_nvme_step_s\": "
      "%.4f, \"stage3_nvme_ratio\": %.3f, \"stage3_nvme_bytes_per_step\": %lld, "
      "\"stage3_inmem_rss_mb\": %.0f, \"stage3_nvme_rss_mb\": %.0f}\n",
      memory.value, nvme.value, nvme.value / memory.value, memory_opt, nvme_opt,
      static_cast<long long>(bytes), nvme_opt > 0 ? bytes / nvme_opt / 1e9 : 0.0, memory.rss_mb,
      nvme.rss_mb, per_stage.c_str(), stage3_rss.c_str(), s3_memory.value, s3_nvme.value,
      s3_nvme.value / s3_memory.value, static_cast<long long>(s3_io), s3_memory.rss_mb,
      s3_nvme.rss_mb);
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "memory" || mode == "nvme" || mode == "stage3" || mode == "stage3_nvme") {
    return strata::RunCase(mode);
  }
  if (mode == "stage3_rank") return strata::RunStage3Rank();
  return strata::RunBench();
}
