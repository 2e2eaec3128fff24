// See worker_service.h.
#include "services/coordinator/worker_service.h"

#include "absl/strings/str_cat.h"
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

grpc::Status WorkerServiceImpl::AsWorker(const grpc::ServerContext* context,
                                         const std::string& name) const {
  return tokens_ == nullptr ? grpc::Status::OK : tokens_->Worker(context, name);
}

grpc::Status WorkerServiceImpl::InAttempt(const grpc::ServerContext* context,
                                          const std::string& prefix) const {
  if (tokens_ == nullptr || !tokens_->has_workers()) return grpc::Status::OK;
  std::string worker;
  if (grpc::Status s = tokens_->WorkerName(context, &worker); !s.ok()) return s;
  if (jobs_ == nullptr || !jobs_->PlacedInAttempt(prefix, worker)) {
    return grpc::Status(
        grpc::StatusCode::PERMISSION_DENIED,
        absl::StrCat("worker ", worker, " holds no rank of the current attempt \"", prefix, "\""));
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Register(grpc::ServerContext* context,
                                         const v1::RegisterWorkerRequest* request,
                                         v1::RegisterWorkerResponse* response) {
  if (grpc::Status s = AsWorker(context, request->name()); !s.ok()) return s;
  absl::StatusOr<v1::RegisterWorkerResponse> registered = registry_->Register(*request);
  if (registered.ok() && jobs_ != nullptr) jobs_->OnRegister(request->name());
  return Reply(std::move(registered), response);
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext* context,
                                          const v1::HeartbeatRequest* request,
                                          v1::HeartbeatResponse* response) {
  if (grpc::Status s = AsWorker(context, request->worker_id()); !s.ok()) return s;
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
  if (grpc::Status s = AsWorker(context, request->worker_id()); !s.ok()) return s;
  // One live stream per worker: opening this one ends any older one, and re-queues every
  // order the worker has not acted on (an order taken by a stream that broke is not lost).
  const int64_t generation = jobs_->OpenAssignments(request->worker_id());
  while (!context->IsCancelled()) {
    absl::StatusOr<std::vector<v1::Assignment>> orders =
        jobs_->TakeAssignments(request->worker_id(), generation, absl::Seconds(1));
    if (!orders.ok()) return ToGrpcStatus(orders.status());
    for (const v1::Assignment& a : *orders) {
      if (!writer->Write(a)) {
        // The worker went away mid-stream: its next stream gets the order again.
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "assignment stream closed");
      }
    }
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::ReportProgress(grpc::ServerContext* context,
                                               const v1::ProgressReport* request,
                                               v1::ReportAck* response) {
  if (jobs_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no job manager");
  if (grpc::Status s = AsWorker(context, request->worker_id()); !s.ok()) return s;
  return Reply(jobs_->OnProgress(*request), response);
}

grpc::Status WorkerServiceImpl::ReportRankExit(grpc::ServerContext* context,
                                               const v1::RankExit* request,
                                               v1::ReportAck* response) {
  if (jobs_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no job manager");
  if (grpc::Status s = AsWorker(context, request->worker_id()); !s.ok()) return s;
  return Reply(jobs_->OnRankExit(*request), response);
}

grpc::Status WorkerServiceImpl::ReportCheckpoint(grpc::ServerContext* context,
                                                 const v1::CheckpointReport* request,
                                                 v1::ReportAck* response) {
  if (jobs_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no job manager");
  if (grpc::Status s = AsWorker(context, request->worker_id()); !s.ok()) return s;
  return Reply(jobs_->OnCheckpoint(*request), response);
}

grpc::Status WorkerServiceImpl::ListWorkers(grpc::ServerContext* context,
                                            const v1::ListWorkersRequest* request,
                                            v1::ListWorkersResponse* response) {
  if (tokens_ != nullptr) {
    std::string user;
    if (grpc::Status s = tokens_->User(context, &user); !s.ok()) return s;
  }
  *response = registry_->List(request->include_lost());
  if (jobs_ != nullptr) {
    const std::set<std::string> cordoned = jobs_->Cordoned();
    for (v1::WorkerInfo& w : *response->mutable_workers()) {
      w.set_cordoned(cordoned.count(w.worker_id()) > 0);
    }
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::SetCordon(grpc::ServerContext* context,
                                          const v1::SetCordonRequest* request,
                                          v1::SetCordonResponse*) {
  if (jobs_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no job manager");
  std::string user;
  if (tokens_ != nullptr) {
    if (grpc::Status s = tokens_->Operator(context, &user); !s.ok()) return s;
  }
  return ToGrpcStatus(jobs_->SetCordoned(request->name(), request->cordoned()));
}

grpc::Status WorkerServiceImpl::Drain(grpc::ServerContext* context,
                                      const v1::DrainWorkerRequest* request,
                                      v1::DrainWorkerResponse* response) {
  if (jobs_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no job manager");
  // The worker itself (shutting down: kept off the schedule until it registers again), or an
  // operator (cordoned until uncordoned).
  bool leaving = false;
  std::string by = "operator";
  std::string worker;
  if (tokens_ != nullptr && tokens_->has_workers() && tokens_->WorkerName(context, &worker).ok()) {
    if (worker != request->name()) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          absl::StrCat("worker ", worker, " may drain only itself"));
    }
    leaving = true;
  } else if (tokens_ != nullptr && tokens_->has_users()) {
    std::string user;
    if (grpc::Status s = tokens_->Operator(context, &user); !s.ok()) return s;
    by = "operator " + user;
  } else {
    leaving = request->leaving();  // Nobody is authenticated: the caller says who it is.
  }
  if (leaving) by = "worker shutting down";
  absl::StatusOr<std::vector<std::string>> moved =
      jobs_->Drain(request->name(), by, leaving);
  if (!moved.ok()) return ToGrpcStatus(moved.status());
  for (const std::string& id : *moved) response->add_job_ids(id);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::ReportStepLog(grpc::ServerContext* context,
                                              const v1::StepLogReport* request,
                                              v1::StepLogAck* response) {
  if (jobs_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no job manager");
  if (grpc::Status s = AsWorker(context, request->worker_id()); !s.ok()) return s;
  return Reply(jobs_->OnStepLog(*request), response);
}

grpc::Status WorkerServiceImpl::UploadExport(grpc::ServerContext* context,
                                             grpc::ServerReader<v1::ExportChunk>* reader,
                                             v1::UploadExportAck*) {
  if (relay_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no export relay");
  v1::ExportChunk chunk;
  while (reader->Read(&chunk)) {
    if (grpc::Status s = AsWorker(context, chunk.worker_id()); !s.ok()) return s;
    if (absl::Status s = relay_->Push(chunk, absl::Seconds(60)); !s.ok()) return ToGrpcStatus(s);
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::StoreSet(grpc::ServerContext* context,
                                         const v1::StoreSetRequest* request,
                                         v1::StoreSetResponse*) {
  if (store_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no store");
  if (grpc::Status s = InAttempt(context, request->prefix()); !s.ok()) return s;
  return ToGrpcStatus(store_->Set(request->prefix(), request->key(), request->value()));
}

grpc::Status WorkerServiceImpl::StoreGet(grpc::ServerContext* context,
                                         const v1::StoreGetRequest* request,
                                         v1::StoreGetResponse* response) {
  if (store_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no store");
  if (grpc::Status s = InAttempt(context, request->prefix()); !s.ok()) return s;
  absl::Duration timeout = absl::Seconds(30);
  if (request->has_timeout()) {
    timeout =
        absl::Seconds(request->timeout().seconds()) + absl::Nanoseconds(request->timeout().nanos());
  }
  timeout = std::min(timeout, absl::Minutes(10));
  absl::StatusOr<std::vector<std::string>> values =
      store_->Get(request->prefix(), {request->keys().begin(), request->keys().end()}, timeout);
  if (!values.ok()) return ToGrpcStatus(values.status());
  for (std::string& v : *values) response->add_values(std::move(v));
  return grpc::Status::OK;
}

}  // namespace strata
