// gRPC handler for strata.v1.WorkerService: converts between protos/grpc::Status and the
// WorkerRegistry (registration, liveness), the JobManager (assignments, progress, rank exits)
// and the RendezvousStore. With worker tokens, a worker acts only under the name its token is
// for, reports only about ranks placed on it (JobManager), and reads and writes only the
// rendezvous keys of attempts it holds a rank of; ListWorkers takes a user token, SetCordon an
// operator's, Drain an operator's or the drained worker's own.
#ifndef STRATA_SERVICES_COORDINATOR_WORKER_SERVICE_H_
#define STRATA_SERVICES_COORDINATOR_WORKER_SERVICE_H_

#include "proto/strata/v1/worker_service.grpc.pb.h"
#include "services/coordinator/job_manager.h"
#include "services/coordinator/rendezvous_store.h"
#include "services/coordinator/tokens.h"
#include "services/coordinator/transfer_relay.h"
#include "services/coordinator/worker_registry.h"

namespace strata {

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  // Not owned; they must outlive the service. `jobs`, `store` and `tokens` may be null
  // (registry only, no authentication).
  WorkerServiceImpl(WorkerRegistry* registry, JobManager* jobs, RendezvousStore* store = nullptr,
                    const TokenTable* tokens = nullptr, TransferRelay* relay = nullptr)
      : registry_(registry), jobs_(jobs), store_(store), tokens_(tokens), relay_(relay) {}

  grpc::Status Register(grpc::ServerContext* context, const v1::RegisterWorkerRequest* request,
                        v1::RegisterWorkerResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status ListWorkers(grpc::ServerContext* context, const v1::ListWorkersRequest* request,
                           v1::ListWorkersResponse* response) override;
  grpc::Status SetCordon(grpc::ServerContext* context, const v1::SetCordonRequest* request,
                         v1::SetCordonResponse* response) override;
  grpc::Status Drain(grpc::ServerContext* context, const v1::DrainWorkerRequest* request,
                     v1::DrainWorkerResponse* response) override;
  // Streams start/stop orders until the worker disconnects.
  grpc::Status Assignments(grpc::ServerContext* context, const v1::AssignmentsRequest* request,
                           grpc::ServerWriter<v1::Assignment>* writer) override;
  grpc::Status ReportProgress(grpc::ServerContext* context, const v1::ProgressReport* request,
                              v1::ReportAck* response) override;
  grpc::Status ReportRankExit(grpc::ServerContext* context, const v1::RankExit* request,
                              v1::ReportAck* response) override;
  grpc::Status ReportCheckpoint(grpc::ServerContext* context, const v1::CheckpointReport* request,
                                v1::ReportAck* response) override;
  grpc::Status ReportStepLog(grpc::ServerContext* context, const v1::StepLogReport* request,
                             v1::StepLogAck* response) override;
  grpc::Status StoreSet(grpc::ServerContext* context, const v1::StoreSetRequest* request,
                        v1::StoreSetResponse* response) override;
  grpc::Status StoreGet(grpc::ServerContext* context, const v1::StoreGetRequest* request,
                        v1::StoreGetResponse* response) override;
  // Chunks of an export a user asked for (JobService.Export), relayed to that user.
  grpc::Status UploadExport(grpc::ServerContext* context,
                            grpc::ServerReader<v1::ExportChunk>* reader,
                            v1::UploadExportAck* response) override;

 private:
  grpc::Status AsWorker(const grpc::ServerContext* context, const std::string& name) const;
  // With worker tokens: OK when the caller's worker holds a rank of the current attempt
  // `prefix` names (the rendezvous store's keys are that attempt's).
  grpc::Status InAttempt(const grpc::ServerContext* context, const std::string& prefix) const;

  WorkerRegistry* registry_;
  JobManager* jobs_;
  RendezvousStore* store_;
  const TokenTable* tokens_;
  TransferRelay* relay_;
};

}  // namespace strata

#endif  // STRATA_SERVICES_COORDINATOR_WORKER_SERVICE_H_
