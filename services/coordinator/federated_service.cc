// See federated_service.h.
#include "services/coordinator/federated_service.h"

#include "absl/strings/str_cat.h"
#include "services/common/grpc_status.h"

namespace strata {
namespace {

// Copies a result or its status out.
template <typename T>
grpc::Status Answer(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status FederatedServiceImpl::CheckSize(const google::protobuf::Message& request) const {
  const int64_t bytes = static_cast<int64_t>(request.ByteSizeLong());
  if (bytes > max_request_bytes_) {
    return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("request of ", bytes, " bytes exceeds the limit of ", max_request_bytes_));
  }
  return grpc::Status::OK;
}

grpc::Status FederatedServiceImpl::Register(grpc::ServerContext*,
                                            const v1::RegisterClientRequest* request,
                                            v1::RegisterClientResponse* response) {
  if (grpc::Status s = CheckSize(*request); !s.ok()) return s;
  return Answer(rounds_->Register(*request), response);
}

grpc::Status FederatedServiceImpl::PullTask(grpc::ServerContext* context,
                                            const v1::PullTaskRequest* request,
                                            v1::PullTaskResponse* response) {
  if (grpc::Status s = CheckSize(*request); !s.ok()) return s;
  grpc::Status status = Answer(rounds_->PullTask(*request, BearerToken(context)), response);
  if (status.ok()) {
    rounds_->CountBytes(request->job_id(), request->client_id(), request->ByteSizeLong(),
                        response->ByteSizeLong());
  }
  return status;
}

grpc::Status FederatedServiceImpl::PushResult(grpc::ServerContext* context,
                                              const v1::PushResultRequest* request,
                                              v1::PushResultResponse* response) {
  if (grpc::Status s = CheckSize(*request); !s.ok()) return s;
  // Counted first: the push that closes the round is part of it.
  rounds_->CountBytes(request->job_id(), request->client_id(), request->ByteSizeLong(), 0);
  return Answer(rounds_->PushResult(*request, BearerToken(context)), response);
}

grpc::Status FederatedServiceImpl::SyncHistory(grpc::ServerContext* context,
                                               const v1::SyncHistoryRequest* request,
                                               v1::SyncHistoryResponse* response) {
  if (grpc::Status s = CheckSize(*request); !s.ok()) return s;
  return Answer(rounds_->SyncHistory(*request, BearerToken(context)), response);
}

grpc::Status FederatedServiceImpl::ListRounds(grpc::ServerContext* context,
                                              const v1::ListRoundsRequest* request,
                                              v1::ListRoundsResponse* response) {
  // Operators: the job must be the caller's (as for JobService).
  if (tokens_ != nullptr && jobs_ != nullptr) {
    std::string user;
    if (grpc::Status s = tokens_->User(context, &user); !s.ok()) return s;
    if (absl::Status s = jobs_->Get(request->job_id(), user).status(); !s.ok()) {
      return ToGrpcStatus(s);
    }
  }
  return Answer(rounds_->ListRounds(request->job_id()), response);
}

}  // namespace strata
