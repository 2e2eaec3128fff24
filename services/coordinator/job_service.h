// gRPC handler for strata.v1.JobService over the JobManager. Identifies the caller from the
// "authorization: Bearer TOKEN" metadata through the user token table (users see only their own
// jobs); without user tokens every caller is the anonymous owner "".
#ifndef STRATA_SERVICES_COORDINATOR_JOB_SERVICE_H_
#define STRATA_SERVICES_COORDINATOR_JOB_SERVICE_H_

#include <string>

#include "proto/strata/v1/job_service.grpc.pb.h"
#include "services/coordinator/job_manager.h"
#include "services/coordinator/tokens.h"
#include "services/coordinator/transfer_relay.h"

namespace strata {

class JobServiceImpl final : public v1::JobService::Service {
 public:
  // `jobs`, `tokens` and `relay` must outlive this; without a relay Export is UNIMPLEMENTED.
  JobServiceImpl(JobManager* jobs, const TokenTable* tokens, TransferRelay* relay = nullptr)
      : jobs_(jobs), tokens_(tokens), relay_(relay) {}

  grpc::Status Submit(grpc::ServerContext* context, const v1::SubmitJobRequest* request,
                      v1::SubmitJobResponse* response) override;
  grpc::Status Get(grpc::ServerContext* context, const v1::GetJobRequest* request,
                   v1::Job* response) override;
  grpc::Status List(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                    v1::ListJobsResponse* response) override;
  grpc::Status Watch(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                     grpc::ServerWriter<v1::JobEvent>* writer) override;
  grpc::Status Logs(grpc::ServerContext* context, const v1::JobLogsRequest* request,
                    grpc::ServerWriter<v1::LogLine>* writer) override;
  grpc::Status Cancel(grpc::ServerContext* context, const v1::CancelJobRequest* request,
                      v1::Job* response) override;
  grpc::Status Kill(grpc::ServerContext* context, const v1::KillJobRequest* request,
                    v1::Job* response) override;
  // Orders the worker holding the job's export to upload it and relays the chunks.
  grpc::Status Export(grpc::ServerContext* context, const v1::ExportJobRequest* request,
                      grpc::ServerWriter<v1::ExportChunk>* writer) override;

 private:
  JobManager* jobs_;
  const TokenTable* tokens_;
  TransferRelay* relay_;
};

}  // namespace strata

#endif  // STRATA_SERVICES_COORDINATOR_JOB_SERVICE_H_
