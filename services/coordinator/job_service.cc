// See job_service.h.
#include "services/coordinator/job_service.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "services/common/grpc_status.h"

namespace strata {
namespace {

template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

v1::JobEvent EventFor(const v1::Job& job, int64_t sequence, v1::JobState previous,
                      bool checkpointed = false) {
  v1::JobEvent event;
  *event.mutable_time() = google::protobuf::util::TimeUtil::GetCurrentTime();
  event.set_job_id(job.id());
  event.set_sequence(sequence);
  if (previous != job.state()) {
    event.mutable_state_change()->set_from(previous);
    event.mutable_state_change()->set_to(job.state());
    event.mutable_state_change()->set_reason(job.message());
    *event.mutable_job() = job;
  } else if (checkpointed) {
    *event.mutable_checkpoint() = job.latest_checkpoint();
  } else {
    *event.mutable_progress() = job.progress();
  }
  return event;
}

}  // namespace

#define STRATA_CALLER(context, user)                                         \
  std::string user;                                                          \
  if (grpc::Status status_ = tokens_->User(context, &user); !status_.ok()) { \
    return status_;                                                          \
  }

grpc::Status JobServiceImpl::Submit(grpc::ServerContext* context,
                                    const v1::SubmitJobRequest* request,
                                    v1::SubmitJobResponse* response) {
  STRATA_CALLER(context, user);
  absl::StatusOr<v1::Job> job = jobs_->Submit(request->spec(), request->request_id(), user);
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response->mutable_job() = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::Get(grpc::ServerContext* context, const v1::GetJobRequest* request,
                                 v1::Job* response) {
  STRATA_CALLER(context, user);
  return Reply(jobs_->Get(request->job_id(), user), response);
}

grpc::Status JobServiceImpl::List(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                                  v1::ListJobsResponse* response) {
  STRATA_CALLER(context, user);
  return Reply(jobs_->List(*request, user), response);
}

grpc::Status JobServiceImpl::Cancel(grpc::ServerContext* context,
                                    const v1::CancelJobRequest* request, v1::Job* response) {
  STRATA_CALLER(context, user);
  return Reply(jobs_->Cancel(request->job_id(), request->reason(), user), response);
}

grpc::Status JobServiceImpl::Kill(grpc::ServerContext* context, const v1::KillJobRequest* request,
                                  v1::Job* response) {
  STRATA_CALLER(context, user);
  return Reply(jobs_->Kill(request->job_id(), request->reason(), user), response);
}

grpc::Status JobServiceImpl::Export(grpc::ServerContext* context,
                                    const v1::ExportJobRequest* request,
                                    grpc::ServerWriter<v1::ExportChunk>* writer) {
  STRATA_CALLER(context, user);
  if (relay_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no export relay");
  absl::StatusOr<std::string> worker = jobs_->ExportWorker(request->job_id(), user);
  if (!worker.ok()) return ToGrpcStatus(worker.status());
  const int64_t transfer = relay_->Open(*worker);
  grpc::Status status = ToGrpcStatus(jobs_->RequestUpload(request->job_id(), *worker, transfer));
  while (status.ok() && !context->IsCancelled()) {
    absl::StatusOr<v1::ExportChunk> chunk = relay_->Pop(transfer, absl::Seconds(60));
    if (!chunk.ok()) {
      status = ToGrpcStatus(chunk.status());
      break;
    }
    if (!chunk->error().empty()) {
      status = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            absl::StrCat("worker ", *worker, ": ", chunk->error()));
      break;
    }
    chunk->clear_transfer_id();
    chunk->clear_worker_id();
    if (!writer->Write(*chunk)) break;
    if (chunk->finished()) break;
  }
  relay_->Close(transfer);
  return status;
}

grpc::Status JobServiceImpl::Watch(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                                   grpc::ServerWriter<v1::JobEvent>* writer) {
  STRATA_CALLER(context, user);
  int64_t version = 0, sequence = 0;
  absl::StatusOr<v1::Job> job =
      jobs_->WaitForChange(request->job_id(), user, &version, absl::ZeroDuration());
  if (!job.ok()) return ToGrpcStatus(job.status());
  v1::JobEvent first = EventFor(*job, ++sequence, v1::JOB_STATE_UNSPECIFIED);
  if (!writer->Write(first)) return grpc::Status::OK;
  v1::JobState state = job->state();
  int64_t step = job->progress().step();
  std::string checkpoint = job->latest_checkpoint().SerializeAsString();
  while (!IsTerminal(state) && !context->IsCancelled()) {
    job = jobs_->WaitForChange(request->job_id(), user, &version, absl::Seconds(1));
    if (!job.ok()) return ToGrpcStatus(job.status());
    const bool moved = job->state() != state;
    const bool checkpointed = job->latest_checkpoint().SerializeAsString() != checkpoint;
    const bool progressed = job->progress().step() != step;
    if (!moved && checkpointed) {
      if (!writer->Write(EventFor(*job, ++sequence, state, /*checkpointed=*/true))) break;
      checkpoint = job->latest_checkpoint().SerializeAsString();
    }
    if (!moved && !(progressed && request->include_progress())) continue;
    if (!writer->Write(EventFor(*job, ++sequence, state))) break;
    state = job->state();
    step = job->progress().step();
    checkpoint = job->latest_checkpoint().SerializeAsString();
  }
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::Logs(grpc::ServerContext* context, const v1::JobLogsRequest* request,
                                  grpc::ServerWriter<v1::LogLine>* writer) {
  STRATA_CALLER(context, user);
  v1::JobLogsRequest next = *request;
  int64_t version = 0;
  while (!context->IsCancelled()) {
    v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
    absl::StatusOr<std::vector<v1::LogLine>> lines = jobs_->Logs(next, user, &state);
    if (!lines.ok()) return ToGrpcStatus(lines.status());
    for (const v1::LogLine& line : *lines) {
      if (!writer->Write(line)) return grpc::Status::OK;
      next.set_after_sequence(line.sequence());
    }
    next.set_tail(0);  // The tail applies to the first batch only.
    if (!request->follow() || IsTerminal(state)) break;
    absl::StatusOr<v1::Job> job =
        jobs_->WaitForChange(request->job_id(), user, &version, absl::Seconds(1));
    if (!job.ok()) return ToGrpcStatus(job.status());
  }
  return grpc::Status::OK;
}

}  // namespace strata
