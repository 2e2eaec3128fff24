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
  return Reply(registry_->Heartbeat(*request), response);
}

grpc::Status WorkerServiceImpl::ListWorkers(grpc::ServerContext*,
                                            const v1::ListWorkersRequest* request,
                                            v1::ListWorkersResponse* response) {
  *response = registry_->List(request->include_lost());
  return grpc::Status::OK;
}

}  // namespace strata
