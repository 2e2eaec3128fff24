// gRPC handler for strata.v1.FederatedService over the RoundManager: the session token travels as
// "authorization: Bearer TOKEN" (Register takes the enrollment token in the request), requests
// above the size limit are refused before they are parsed into the round, and every call's wire
// bytes are counted for its client.
#ifndef STRATA_SERVICES_COORDINATOR_FEDERATED_SERVICE_H_
#define STRATA_SERVICES_COORDINATOR_FEDERATED_SERVICE_H_

#include "proto/strata/v1/federated_service.grpc.pb.h"
#include "services/coordinator/round_manager.h"
#include "services/coordinator/tokens.h"

namespace strata {

class FederatedServiceImpl final : public v1::FederatedService::Service {
 public:
  // Not owned. `tokens` (user tokens, for ListRounds) may be null.
  FederatedServiceImpl(RoundManager* rounds, JobManager* jobs, const TokenTable* tokens,
                       int64_t max_request_bytes = 64 << 10)
      : rounds_(rounds), jobs_(jobs), tokens_(tokens), max_request_bytes_(max_request_bytes) {}

  grpc::Status Register(grpc::ServerContext* context, const v1::RegisterClientRequest* request,
                        v1::RegisterClientResponse* response) override;
  grpc::Status PullTask(grpc::ServerContext* context, const v1::PullTaskRequest* request,
                        v1::PullTaskResponse* response) override;
  grpc::Status PushResult(grpc::ServerContext* context, const v1::PushResultRequest* request,
                          v1::PushResultResponse* response) override;
  grpc::Status SyncHistory(grpc::ServerContext* context, const v1::SyncHistoryRequest* request,
                           v1::SyncHistoryResponse* response) override;
  grpc::Status ListRounds(grpc::ServerContext* context, const v1::ListRoundsRequest* request,
                          v1::ListRoundsResponse* response) override;

 private:
  grpc::Status CheckSize(const google::protobuf::Message& request) const;

  RoundManager* rounds_;
  JobManager* jobs_;
  const TokenTable* tokens_;
  const int64_t max_request_bytes_;
};

}  // namespace strata

#endif  // STRATA_SERVICES_COORDINATOR_FEDERATED_SERVICE_H_
