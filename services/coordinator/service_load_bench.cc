// service_load_bench: the real strata-coordinator (SQLite store under a temporary directory)
// against simulated load on loopback: 100 workers registering and heartbeating every 200 ms while
// 8 clients submit 1,000 jobs (which the coordinator schedules onto the simulated workers).
// Reports submit and heartbeat latency (p50/p99) and the coordinator's CPU time during the load
// (utime + stime from /proc). Last line: one JSON object.
//   bazel run -c opt //services/coordinator:service_load_bench
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
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
#include "proto/strata/v1/job_service.grpc.pb.h"
#include "proto/strata/v1/worker_service.grpc.pb.h"
#include "tests/testing/process_stats.h"
#include "tests/testing/subprocess.h"

ABSL_FLAG(int, submits, 1000, "Jobs to submit.");
ABSL_FLAG(int, workers, 100, "Simulated workers heartbeating.");
ABSL_FLAG(int, clients, 8, "Concurrent submitting clients.");
ABSL_FLAG(std::string, dir, "/var/tmp", "Where the coordinator's data directory goes.");

namespace strata {
namespace {

using ::strata::testing::CpuSeconds;
using ::strata::testing::Percentile;

using Clock = std::chrono::steady_clock;

v1::JobSpec Spec(int i) {
  v1::JobSpec s;
  s.set_name(absl::StrCat("load-", i));
  s.set_priority(1 + i % 99);
  s.mutable_model()->set_config_json(R"({"model_type": "gpt2", "n_layer": 2})");
  s.mutable_data()->add_train_paths("/data/train.txt");
  s.mutable_data()->set_batch_size(8);
  s.mutable_data()->set_seq_len(128);
  s.mutable_optimizer()->mutable_zeroth_order()->set_lr(1e-5);
  s.mutable_training()->set_max_steps(1000);
  s.mutable_resources()->set_cores_per_rank(1 + i % 4);
  return s;
}

int Run() {
  const int submits = absl::GetFlag(FLAGS_submits), workers = absl::GetFlag(FLAGS_workers);
  const int clients = absl::GetFlag(FLAGS_clients);
  const std::string dir = absl::StrCat(absl::GetFlag(FLAGS_dir), "/strata_load_bench_", getpid());
  mkdir(dir.c_str(), 0755);
  absl::StatusOr<testing::Subprocess> coordinator = testing::Subprocess::Start(
      {"services/coordinator/strata-coordinator", "--listen=localhost:0",
       "--port_file=" + dir + "/port", "--data_dir=" + dir + "/data",
       "--metrics_listen=", "--serve_plaintext", "--allow_unauthenticated_workers",
       "--open_enrollment", "--client_rate_limit=0", "--heartbeat_interval=200ms",
       "--heartbeat_timeout=5s", "--adopt_timeout=1h"},
      dir, "coordinator");
  if (!coordinator.ok()) {
    std::fprintf(stderr, "%s\n", coordinator.status().ToString().c_str());
    return 1;
  }
  const int port = testing::WaitForPortFile(dir + "/port", *coordinator);
  if (port <= 0) return 1;
  auto channel =
      grpc::CreateChannel(absl::StrCat("localhost:", port), grpc::InsecureChannelCredentials());
  auto worker_stub = v1::WorkerService::NewStub(channel);
  auto job_stub = v1::JobService::NewStub(channel);

  // Register the workers.
  for (int w = 0; w < workers; ++w) {
    v1::RegisterWorkerRequest r;
    r.set_name(absl::StrCat("sim-", w));
    r.set_address(absl::StrCat("sim-", w, ":7071"));
    r.mutable_capacity()->set_cores(8);
    r.mutable_capacity()->set_memory_bytes(int64_t{64} << 30);
    grpc::ClientContext ctx;
    v1::RegisterWorkerResponse response;
    if (!worker_stub->Register(&ctx, r, &response).ok()) {
      std::fprintf(stderr, "register failed\n");
      return 1;
    }
  }
  const double cpu_before = CpuSeconds(coordinator->pid());
  const auto start = Clock::now();
  std::atomic<bool> done{false};
  absl::Mutex mu;
  std::vector<double> heartbeat_ms, submit_ms;
  // Heartbeats: 4 threads, each covering a quarter of the workers every 200 ms.
  std::vector<std::thread> beaters;
  for (int t = 0; t < 4; ++t) {
    beaters.emplace_back([&, t] {
      while (!done.load()) {
        const auto round = Clock::now();
        for (int w = t; w < workers; w += 4) {
          v1::HeartbeatRequest h;
          h.set_worker_id(absl::StrCat("sim-", w));
          grpc::ClientContext ctx;
          v1::HeartbeatResponse response;
          const auto t0 = Clock::now();
          worker_stub->Heartbeat(&ctx, h, &response);
          const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
          absl::MutexLock lock(&mu);
          heartbeat_ms.push_back(ms);
        }
        std::this_thread::sleep_until(round + std::chrono::milliseconds(200));
      }
    });
  }
  std::atomic<int> next{0}, failed{0};
  std::vector<std::thread> submitters;
  for (int c = 0; c < clients; ++c) {
    submitters.emplace_back([&] {
      for (int i = next++; i < submits; i = next++) {
        v1::SubmitJobRequest request;
        *request.mutable_spec() = Spec(i);
        request.set_request_id(absl::StrCat("load-", i));
        grpc::ClientContext ctx;
        v1::SubmitJobResponse response;
        const auto t0 = Clock::now();
        const grpc::Status status = job_stub->Submit(&ctx, request, &response);
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (!status.ok()) ++failed;
        absl::MutexLock lock(&mu);
        submit_ms.push_back(ms);
      }
    });
  }
  for (std::thread& t : submitters) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  done = true;
  for (std::thread& t : beaters) t.join();
  const double cpu = CpuSeconds(coordinator->pid()) - cpu_before;
  // The jobs the coordinator placed on the simulated workers.
  grpc::ClientContext ctx;
  v1::ListJobsRequest list;
  list.add_states(v1::JOB_STATE_STARTING);
  list.set_page_size(1000);
  v1::ListJobsResponse started;
  job_stub->List(&ctx, list, &started);
  coordinator->Signal(SIGTERM).IgnoreError();
  coordinator->Wait(absl::Seconds(10)).IgnoreError();
  if (std::system(("rm -rf " + dir).c_str()) != 0)
    std::fprintf(stderr, "could not remove %s\n", dir.c_str());

  const double p50 = Percentile(submit_ms, 0.5), p99 = Percentile(submit_ms, 0.99);
  std::fprintf(stderr,
               "%d submits from %d clients in %.2f s (%.0f/s, %d failed) with %d workers "
               "heartbeating every 200 ms: submit p50 %.2f ms p99 %.2f ms; heartbeat p50 %.2f "
               "ms p99 %.2f ms (%zu beats); coordinator CPU %.2f s (%.0f%% of one core); %d "
               "jobs placed on the workers\n",
               submits, clients, wall, submits / wall, failed.load(), workers, p50, p99,
               Percentile(heartbeat_ms, 0.5), Percentile(heartbeat_ms, 0.99), heartbeat_ms.size(),
               cpu, 100 * cpu / wall, started.jobs_size());
  std::printf(
      "{\"submits\": %d, \"workers\": %d, \"clients\": %d, \"submit_p50_ms\": %.3f, "
      "\"submit_p99_ms\": %.3f, \"heartbeat_p50_ms\": %.3f, \"heartbeat_p99_ms\": %.3f, "
      "\"coordinator_cpu_s\": %.3f, \"wall_s\": %.3f, \"failed\": %d, \"jobs_placed\": %d}\n",
      submits, workers, clients, p50, p99, Percentile(heartbeat_ms, 0.5),
      Percentile(heartbeat_ms, 0.99), cpu, wall, failed.load(), started.jobs_size());
  return failed.load() == 0 ? 0 : 1;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return strata::Run();
}
