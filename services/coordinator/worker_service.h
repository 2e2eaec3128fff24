// gRPC handler for strata.v1.WorkerService: converts between protos/grpc::Status and the
// WorkerRegistry. Calls the registry does not serve yet answer UNIMPLEMENTED (generated base).
#ifndef STRATA_SERVICES_COORDINATOR_WORKER_SERVICE_H_
#define STRATA_SERVICES_COORDINATOR_WORKER_SERVICE_H_

#include "proto/strata/v1/worker_service.grpc.pb.h"
#include "services/coordinator/worker_registry.h"

namespace strata {

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  // `registry` is not owned and must outlive the service.
  explicit WorkerServiceImpl(WorkerRegistry* registry) : registry_(registry) {}

  grpc::Status Register(grpc::ServerContext* context, const v1::RegisterWorkerRequest* request,
                        v1::RegisterWorkerResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status ListWorkers(grpc::ServerContext* context, const v1::ListWorkersRequest* request,
                           v1::ListWorkersResponse* response) override;

 private:
  WorkerRegistry* registry_;
};

}  // namespace strata

#endif  // STRATA_SERVICES_COORDINATOR_WORKER_SERVICE_H_
