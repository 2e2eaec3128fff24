// gRPC handler for strata.v1.JobService over the JobManager. Identifies the caller from the
// "authorization: Bearer TOKEN" metadata through the token table (users see only their own
// jobs); without a token table every caller is the anonymous owner "".
#ifndef STRATA_SERVICES_COORDINATOR_JOB_SERVICE_H_
#define STRATA_SERVICES_COORDINATOR_JOB_SERVICE_H_

#include <map>
#include <string>

#include "proto/strata/v1/job_service.grpc.pb.h"
#include "services/coordinator/job_manager.h"

namespace strata {

class JobServiceImpl final : public v1::JobService::Service {
 public:
  // `user_tokens`: token -> user name; empty means no authentication. `jobs` must outlive this.
  JobServiceImpl(JobManager* jobs, std::map<std::string, std::string> user_tokens)
      : jobs_(jobs), user_tokens_(std::move(user_tokens)) {}

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

 private:
  // The caller's user name, or UNAUTHENTICATED.
  grpc::Status Caller(const grpc::ServerContext* context, std::string* user) const;

  JobManager* jobs_;
  const std::map<std::string, std::string> user_tokens_;
};

}  // namespace strata

#endif  // STRATA_SERVICES_COORDINATOR_JOB_SERVICE_H_
