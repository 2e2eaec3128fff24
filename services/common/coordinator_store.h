// The rendezvous store of a job attempt served by the coordinator (WorkerService.StoreSet and
// StoreGet), as a KeyValueStore for CreateGlooCommunicator: ranks on different workers meet
// through it with no shared filesystem. Calls carry the worker's token; a get waits on the
// coordinator up to its timeout (at most 10 minutes a call there).
#ifndef STRATA_SERVICES_COMMON_COORDINATOR_STORE_H_
#define STRATA_SERVICES_COMMON_COORDINATOR_STORE_H_

#include <grpcpp/channel.h>

#include <memory>
#include <string>
#include <vector>

#include "proto/strata/v1/worker_service.grpc.pb.h"
#include "runtime/dist/communicator.h"

namespace strata {

class CoordinatorStore : public KeyValueStore {
 public:
  // `prefix` is the attempt's StartRank.rendezvous_prefix.
  CoordinatorStore(std::shared_ptr<grpc::Channel> channel, std::string prefix);

  absl::Status Set(const std::string& key, const std::string& value) override;
  absl::StatusOr<std::vector<std::string>> Get(const std::vector<std::string>& keys,
                                               absl::Duration timeout) override;

 private:
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  const std::string prefix_;
};

}  // namespace strata

#endif  // STRATA_SERVICES_COMMON_COORDINATOR_STORE_H_
