// See worker_service.h.
#include "services/coordinator/worker_service.h"

#include "services/common/grpc_status.h"

namespace strata {
namespace {

template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status WorkerServiceImpl::Register(grpc::ServerContext*,
                                         const v1::RegisterWorkerRequest* request,
                                         v1::RegisterWorkerResponse* response) {
  return Reply(registry_->Register(*request), response);
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* request,
                                          v1::HeartbeatResponse* response) {
  absl::StatusOr<v1::HeartbeatResponse> result = registry_->Heartbeat(*request);
  if (result.ok() && !result->reregister() && jobs_ != nullptr) {
    jobs_->OnHeartbeat(request->worker_id(),
                       {request->running().begin(), request->running().end()});
  }
  return Reply(std::move(result), response);
}

grpc::Status WorkerServiceImpl::Assignments(grpc::ServerContext* context,
                                            const v1::AssignmentsRequest* request,
                                            grpc::ServerWriter<v1::Assignment>* writer) {
  if (jobs_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no job manager");
  if (request->worker_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "worker_id must not be empty");
  }
  while (!context->IsCancelled()) {
    for (const v1::Assignment& a : jobs_->TakeAssignments(request->worker_id(), absl::Seconds(1))) {
      if (!writer->Write(a)) {
        // The worker went away mid-stream: the order is resent through its heartbeat's
        // running set (a start that never ran is restarted as lost, a stop repeated).
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "assignment stream closed");
      }
    }
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::ReportProgress(grpc::ServerContext*,
                                               const v1::ProgressReport* request,
                                               v1::ReportAck* response) {
  if (jobs_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no job manager");
  *response = jobs_->OnProgress(*request);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::ReportRankExit(grpc::ServerContext*, const v1::RankExit* request,
                                               v1::ReportAck* response) {
  if (jobs_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no job manager");
  *response = jobs_->OnRankExit(*request);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::ListWorkers(grpc::ServerContext*,
                                            const v1::ListWorkersRequest* request,
                                            v1::ListWorkersResponse* response) {
  *response = registry_->List(request->include_lost());
  return grpc::Status::OK;
}

}  // namespace strata
