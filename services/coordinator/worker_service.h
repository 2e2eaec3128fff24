// gRPC handler for strata.v1.WorkerService: converts between protos/grpc::Status and the
// WorkerRegistry (registration, liveness) and the JobManager (assignments, progress, rank exits).
// Calls not served yet (step log, checkpoints, rendezvous store) answer UNIMPLEMENTED.
#ifndef STRATA_SERVICES_COORDINATOR_WORKER_SERVICE_H_
#define STRATA_SERVICES_COORDINATOR_WORKER_SERVICE_H_

#include "proto/strata/v1/worker_service.grpc.pb.h"
#include "services/coordinator/job_manager.h"
#include "services/coordinator/worker_registry.h"

namespace strata {

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  // `registry` is not owned and must outlive the service.
  // `jobs` may be null (registry only).
  WorkerServiceImpl(WorkerRegistry* registry, JobManager* jobs)
      : registry_(registry), jobs_(jobs) {}

  grpc::Status Register(grpc::ServerContext* context, const v1::RegisterWorkerRequest* request,
                        v1::RegisterWorkerResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status ListWorkers(grpc::ServerContext* context, const v1::ListWorkersRequest* request,
                           v1::ListWorkersResponse* response) override;
  // Streams start/stop orders until the worker disconnects.
  grpc::Status Assignments(grpc::ServerContext* context, const v1::AssignmentsRequest* request,
                           grpc::ServerWriter<v1::Assignment>* writer) override;
  grpc::Status ReportProgress(grpc::ServerContext* context, const v1::ProgressReport* request,
                              v1::ReportAck* response) override;
  grpc::Status ReportRankExit(grpc::ServerContext* context, const v1::RankExit* request,
                              v1::ReportAck* response) override;

 private:
  WorkerRegistry* registry_;
  JobManager* jobs_;
};

}  // namespace strata

#endif  // STRATA_SERVICES_COORDINATOR_WORKER_SERVICE_H_
