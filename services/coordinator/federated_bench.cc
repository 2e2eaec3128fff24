// federated_bench: the real strata-coordinator (plaintext, loopback) running a federated ZO job
// with 1,000 simulated clients every round. Each client registers, pulls its task (with the
// history entry it lacks), and pushes what a real client would after τ = 200 local steps with
// K = 4,096 candidate seeds: the distinct seed indices its 200 uniform draws hit, one float
// scalar each. Clients are lightweight (a pool of threads, no model compute): this measures the
// coordinator and the wire. Reports bytes up and down per client per round (protobuf wire size
// of the requests and responses) against what FedAvg would move for the same model (its full
// fp32 weights each way; GPT-2 small here), round latency p50/p99 (open to close, from the
// rounds' records), and the coordinator's CPU seconds and peak RSS.
//   bazel run -c opt //services/coordinator:federated_bench
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "proto/strata/v1/federated_service.grpc.pb.h"
#include "proto/strata/v1/job_service.grpc.pb.h"
#include "tests/testing/process_stats.h"
#include "tests/testing/subprocess.h"

ABSL_FLAG(int, clients, 1000, "Simulated clients, all sampled every round.");
ABSL_FLAG(int, rounds, 6,
          "Rounds (the first, where clients catch up from nothing, is excluded "
          "from the byte figures).");
ABSL_FLAG(int, local_steps, 200, "tau.");
ABSL_FLAG(int, candidates, 4096, "K.");
ABSL_FLAG(int, threads, 16, "Client threads.");
ABSL_FLAG(std::string, dir, "/var/tmp", "Where the coordinator's data directory goes.");

namespace strata {
namespace {

using ::strata::testing::CpuSeconds;
using ::strata::testing::PeakRssMb;
using ::strata::testing::Percentile;

using Clock = std::chrono::steady_clock;

// GPT-2 small: what FedAvg would ship each way, per client per round.
constexpr int64_t kGpt2SmallParams = 124439808;
constexpr char kGpt2SmallConfig[] =
    R"({"model_type": "gpt2", "vocab_size": 50257, "n_embd": 768, "n_layer": 12, "n_head": 12, )"
    R"("n_positions": 1024})";

struct SimClient {
  std::string id, session;
  int64_t replayed = 0;
};

int Run() {
  const int n = absl::GetFlag(FLAGS_clients), rounds = absl::GetFlag(FLAGS_rounds);
  const int tau = absl::GetFlag(FLAGS_local_steps), K = absl::GetFlag(FLAGS_candidates);
  const std::string dir = absl::StrCat(absl::GetFlag(FLAGS_dir), "/strata_fed_bench_", getpid());
  mkdir(dir.c_str(), 0755);
  absl::StatusOr<testing::Subprocess> coordinator = testing::Subprocess::Start(
      {"services/coordinator/strata-coordinator", "--listen=localhost:0",
       "--port_file=" + dir + "/port", "--data_dir=" + dir + "/data",
       "--metrics_listen=", "--serve_plaintext", "--allow_unauthenticated_workers",
       "--open_enrollment", "--client_rate_limit=0", "--client_online_window=10m"},
      dir, "coordinator");
  if (!coordinator.ok()) {
    std::fprintf(stderr, "%s\n", coordinator.status().ToString().c_str());
    return 1;
  }
  const int port = testing::WaitForPortFile(dir + "/port", *coordinator);
  if (port <= 0) return 1;
  auto channel =
      grpc::CreateChannel(absl::StrCat("localhost:", port), grpc::InsecureChannelCredentials());
  auto fed = v1::FederatedService::NewStub(channel);

  v1::SubmitJobRequest submit;
  v1::JobSpec* spec = submit.mutable_spec();
  spec->set_name("federated-bench");
  spec->mutable_model()->set_config_json(kGpt2SmallConfig);
  spec->mutable_data()->set_batch_size(4);
  spec->mutable_data()->set_seq_len(128);
  spec->mutable_optimizer()->mutable_zeroth_order()->set_lr(1e-6);
  spec->mutable_training()->set_seed(5);
  v1::FederatedSpec* f = spec->mutable_federated();
  f->set_num_rounds(rounds);
  f->set_num_candidate_seeds(K);
  f->set_local_steps(tau);
  f->set_fraction_train(1.0);
  f->set_min_available_nodes(n);
  f->set_min_replies(n);
  f->mutable_round_timeout()->set_seconds(600);
  v1::SubmitJobResponse submitted;
  {
    grpc::ClientContext ctx;
    grpc::Status s = v1::JobService::NewStub(channel)->Submit(&ctx, submit, &submitted);
    if (!s.ok()) {
      std::fprintf(stderr, "submit: %s\n", s.error_message().c_str());
      return 1;
    }
  }
  const v1::Job& job = submitted.job();
  std::vector<SimClient> clients(n);
  for (int c = 0; c < n; ++c) {
    clients[c].id = absl::StrCat("sim-", c);
    v1::RegisterClientRequest r;
    r.set_job_id(job.id());
    r.set_client_id(clients[c].id);
    r.set_num_samples(100 + c % 7);
    v1::RegisterClientResponse response;
    grpc::ClientContext ctx;
    if (!fed->Register(&ctx, r, &response).ok()) {
      std::fprintf(stderr, "register failed\n");
      return 1;
    }
    clients[c].session = response.session_token();
  }
  const double cpu_before = CpuSeconds(coordinator->pid());
  const auto start = Clock::now();
  absl::Mutex mu;
  // Per round: bytes up and down summed over clients.
  std::vector<int64_t> up(rounds + 1, 0), down(rounds + 1, 0);
  std::vector<double> push_ms;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  const int T = absl::GetFlag(FLAGS_threads);
  for (int t = 0; t < T; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      for (int r = 1; r <= rounds; ++r) {
        for (int c = t; c < n; c += T) {
          SimClient& client = clients[c];
          // Pull until this round's task arrives (the round opens once all are online).
          v1::PullTaskResponse task;
          int64_t pulled_up = 0, pulled_down = 0;
          for (;;) {
            v1::PullTaskRequest pull;
            pull.set_job_id(job.id());
            pull.set_client_id(client.id);
            pull.set_replayed_round(client.replayed);
            grpc::ClientContext ctx;
            ctx.AddMetadata("authorization", "Bearer " + client.session);
            if (!fed->PullTask(&ctx, pull, &task).ok()) {
              ++failures;
              return;
            }
            pulled_up += pull.ByteSizeLong();
            pulled_down += task.ByteSizeLong();
            if (task.has_task() && task.task().round() == r) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
          }
          for (const v1::HistoryEntry& e : task.task().history()) client.replayed = e.round();
          // What tau local steps with uniform draws from K candidates would push.
          std::vector<uint32_t> used;
          for (int s = 0; s < tau; ++s) used.push_back(static_cast<uint32_t>(rng() % K));
          std::sort(used.begin(), used.end());
          used.erase(std::unique(used.begin(), used.end()), used.end());
          v1::PushResultRequest push;
          push.set_job_id(job.id());
          push.set_client_id(client.id);
          push.set_round(r);
          push.set_num_samples(100 + c % 7);
          push.set_local_loss(3.0 + normal(rng) * 0.01);
          for (uint32_t index : used) {
            push.add_seed_indices(index);
            push.add_scalars(normal(rng));
          }
          v1::PushResultResponse pushed;
          grpc::ClientContext ctx;
          ctx.AddMetadata("authorization", "Bearer " + client.session);
          const auto t0 = Clock::now();
          if (!fed->PushResult(&ctx, push, &pushed).ok() ||
              pushed.outcome() != v1::PUSH_OUTCOME_ACCEPTED) {
            ++failures;
            return;
          }
          const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
          absl::MutexLock lock(&mu);
          push_ms.push_back(ms);
          up[r] += pulled_up + static_cast<int64_t>(push.ByteSizeLong());
          down[r] += pulled_down + static_cast<int64_t>(pushed.ByteSizeLong());
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = CpuSeconds(coordinator->pid()) - cpu_before;
  const double rss = PeakRssMb(coordinator->pid());
  if (failures > 0) {
    std::fprintf(stderr, "federated_bench: %d client calls failed\n", failures.load());
    return 1;
  }
  v1::ListRoundsRequest list;
  list.set_job_id(job.id());
  v1::ListRoundsResponse listed;
  {
    grpc::ClientContext ctx;
    if (!fed->ListRounds(&ctx, list, &listed).ok()) return 1;
  }
  std::vector<double> round_s;
  for (const v1::RoundInfo& info : listed.rounds()) {
    const double open = info.open_time().seconds() + 1e-9 * info.open_time().nanos();
    const double close = info.close_time().seconds() + 1e-9 * info.close_time().nanos();
    round_s.push_back(close - open);
    std::fprintf(stderr, "round %lld: %s, %d/%d ok, %.3f s, %lld B up / %lld B down per client\n",
                 static_cast<long long>(info.round()), v1::RoundState_Name(info.state()).c_str(),
                 info.replies_ok(), info.sampled(), close - open,
                 static_cast<long long>(up[info.round()] / n),
                 static_cast<long long>(down[info.round()] / n));
  }
  // Steady state: rounds after the first (a client then lacks exactly one history entry).
  int64_t up_total = 0, down_total = 0;
  for (int r = 2; r <= rounds; ++r) {
    up_total += up[r];
    down_total += down[r];
  }
  const double per = static_cast<double>(n) * std::max(1, rounds - 1);
  const double up_per = up_total / per, down_per = down_total / per;
  const double fedavg = 4.0 * kGpt2SmallParams;  // fp32 weights, each way.
  std::fprintf(stderr,
               "%d clients x %d rounds, tau %d, K %d: %.0f B up / %.0f B down per client per "
               "round (FedAvg on GPT-2 small: %.0f MB each way, %.0fx / %.0fx more); rounds "
               "p50 %.3f s, p99 %.3f s; push p50 %.2f ms, p99 %.2f ms; coordinator %.2f CPU s "
               "over %.1f s, peak RSS %.0f MB\n",
               n, rounds, tau, K, up_per, down_per, fedavg / 1e6, fedavg / up_per,
               fedavg / down_per, Percentile(round_s, 0.5), Percentile(round_s, 0.99),
               Percentile(push_ms, 0.5), Percentile(push_ms, 0.99), cpu, wall, rss);
  std::printf(
      "{\"clients\": %d, \"rounds\": %d, \"local_steps\": %d, \"candidates\": %d, "
      "\"up_bytes_per_client_round\": %.0f, \"down_bytes_per_client_round\": %.0f, "
      "\"fedavg_bytes_per_client_round\": %.0f, \"round_p50_s\": %.4f, \"round_p99_s\": %.4f, "
      "\"push_p50_ms\": %.3f, \"push_p99_ms\": %.3f, \"coordinator_cpu_s\": %.2f, "
      "\"coordinator_peak_rss_mb\": %.0f, \"wall_s\": %.1f}\n",
      n, rounds, tau, K, up_per, down_per, fedavg, Percentile(round_s, 0.5),
      Percentile(round_s, 0.99), Percentile(push_ms, 0.5), Percentile(push_ms, 0.99), cpu, rss,
      wall);
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return strata::Run();
}
