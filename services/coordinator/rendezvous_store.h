// The rendezvous key-value store multi-rank jobs meet through (Gloo's Store interface: set,
// and get that waits until every key is set), served by the coordinator on WorkerService
// (StoreSet/StoreGet). Keys live under a prefix per job attempt ("JOB/ATTEMPT", from
// StartRank.rendezvous_prefix) and are dropped with the attempt. Bounded: keys up to 512 bytes,
// values up to 1 MiB, 4096 keys per prefix.
#ifndef STRATA_SERVICES_COORDINATOR_RENDEZVOUS_STORE_H_
#define STRATA_SERVICES_COORDINATOR_RENDEZVOUS_STORE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace strata {

class RendezvousStore {
 public:
  absl::Status Set(const std::string& prefix, const std::string& key, std::string value)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The values of `keys` in order, waiting up to `timeout` for all of them; DEADLINE_EXCEEDED
  // names the keys still missing.
  absl::StatusOr<std::vector<std::string>> Get(const std::string& prefix,
                                               const std::vector<std::string>& keys,
                                               absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets every key under `prefix` (the attempt ended).
  void Drop(const std::string& prefix) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  std::map<std::string, std::map<std::string, std::string>> data_ ABSL_GUARDED_BY(mu_);
};

}  // namespace strata

#endif  // STRATA_SERVICES_COORDINATOR_RENDEZVOUS_STORE_H_
