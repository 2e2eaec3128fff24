// The coordinator's view of its worker daemons: who registered, what each can offer, when each
// last heartbeated. A worker whose last heartbeat is older than the timeout is lost. Plain
// class, no gRPC: WorkerServiceImpl is the thin handler in front of it.
//
// A worker's id is its name (1-63 characters of [A-Za-z0-9._-]): a worker that registers again
// under the same name keeps its id whether it restarted or the coordinator did, so job
// placements stored before a coordinator restart still name the right worker.
#ifndef STRATA_SERVICES_COORDINATOR_WORKER_REGISTRY_H_
#define STRATA_SERVICES_COORDINATOR_WORKER_REGISTRY_H_

#include <functional>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/strata/v1/worker_service.pb.h"

namespace strata {

class WorkerRegistry {
 public:
  struct Options {
    absl::Duration heartbeat_interval = absl::Seconds(2);
    absl::Duration heartbeat_timeout = absl::Seconds(10);
    // The time source; injected by tests.
    std::function<absl::Time()> clock = [] { return absl::Now(); };
  };

  static absl::StatusOr<std::unique_ptr<WorkerRegistry>> Create(Options options);

  // Validates the request (name and capacity) and records the worker.
  absl::StatusOr<v1::RegisterWorkerResponse> Register(const v1::RegisterWorkerRequest& request)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Records liveness. An unknown id gets `reregister = true` rather than an error, so a worker
  // that outlived a coordinator restart finds its way back.
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Workers ordered by id; lost ones only if `include_lost`.
  v1::ListWorkersResponse List(bool include_lost) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit WorkerRegistry(Options options) : options_(std::move(options)) {}

  struct Entry {
    v1::WorkerInfo info;
    absl::Time last_heartbeat;
  };

  bool IsLostLocked(const Entry& entry, absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> workers_ ABSL_GUARDED_BY(mu_);  // By worker id.
};

}  // namespace strata

#endif  // STRATA_SERVICES_COORDINATOR_WORKER_REGISTRY_H_
