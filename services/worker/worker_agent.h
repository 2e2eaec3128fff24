// The worker daemon's link to the coordinator: registers (retrying with exponential backoff
// while the coordinator is unreachable), heartbeats at the interval the coordinator asks for,
// and registers again when the coordinator no longer knows it (e.g. after a coordinator
// restart). Runs on one background thread from Start until Stop.
#ifndef STRATA_SERVICES_WORKER_WORKER_AGENT_H_
#define STRATA_SERVICES_WORKER_WORKER_AGENT_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/strata/v1/worker_service.grpc.pb.h"

namespace strata {

class WorkerAgent {
 public:
  struct Options {
    std::shared_ptr<grpc::Channel> channel;  // To the coordinator.
    std::string name;                        // Stable worker name.
    std::string address;                     // host:port peers can reach this worker on.
    v1::WorkerCapacity capacity;
    std::map<std::string, std::string> labels;
    absl::Duration min_backoff = absl::Milliseconds(200);
    absl::Duration max_backoff = absl::Seconds(10);
    absl::Duration rpc_timeout = absl::Seconds(5);
    // The ranks this worker runs, reported with every registration and heartbeat (the
    // coordinator re-adopts them after its restart and stops the ones it no longer wants).
    std::function<std::vector<v1::RunningRank>()> running;
  };

  static absl::StatusOr<std::unique_ptr<WorkerAgent>> Start(Options options);

  ~WorkerAgent();
  WorkerAgent(const WorkerAgent&) = delete;
  WorkerAgent& operator=(const WorkerAgent&) = delete;

  // Stops the background thread. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // The id the coordinator gave this worker, or "" while unregistered.
  std::string worker_id() const ABSL_LOCKS_EXCLUDED(mu_);

  // Waits until the worker is registered; returns its id, or "" on timeout.
  std::string WaitUntilRegistered(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

  // How many times registration succeeded (1 normally; more after coordinator restarts).
  int registrations() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit WorkerAgent(Options options);
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  // One Register call; true on success.
  bool RegisterOnce() ABSL_LOCKS_EXCLUDED(mu_);
  // One Heartbeat call; false when the coordinator asked us to register again.
  bool HeartbeatOnce(const std::string& worker_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Sleeps up to `duration`; returns true if Stop was called.
  bool SleepOrStop(absl::Duration duration) ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::string worker_id_ ABSL_GUARDED_BY(mu_);
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = absl::Seconds(2);
  int registrations_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace strata

#endif  // STRATA_SERVICES_WORKER_WORKER_AGENT_H_
