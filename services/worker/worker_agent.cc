// See worker_agent.h.
#include "services/worker/worker_agent.h"

#include <algorithm>

#include "google/protobuf/util/time_util.h"
#include "runtime/base/logging.h"
#include "services/common/grpc_status.h"
#include "services/worker/capacity.h"

namespace strata {
namespace {

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerAgent>> WorkerAgent::Start(Options options) {
  if (options.channel == nullptr) return absl::InvalidArgumentError("channel is required");
  if (options.name.empty()) return absl::InvalidArgumentError("name must not be empty");
  if (options.min_backoff <= absl::ZeroDuration() || options.max_backoff < options.min_backoff) {
    return absl::InvalidArgumentError("backoff must satisfy 0 < min_backoff <= max_backoff");
  }
  std::unique_ptr<WorkerAgent> agent(new WorkerAgent(std::move(options)));
  agent->thread_ = std::thread([raw = agent.get()] { raw->Loop(); });
  return agent;
}

WorkerAgent::WorkerAgent(Options options)
    : options_(std::move(options)), stub_(v1::WorkerService::NewStub(options_.channel)) {}

WorkerAgent::~WorkerAgent() { Stop(); }

void WorkerAgent::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

std::string WorkerAgent::WaitUntilRegistered(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto registered = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !worker_id_.empty(); };
  mu_.AwaitWithTimeout(absl::Condition(&registered), timeout);
  return worker_id_;
}

std::string WorkerAgent::worker_id() const {
  absl::MutexLock lock(&mu_);
  return worker_id_;
}

int WorkerAgent::registrations() const {
  absl::MutexLock lock(&mu_);
  return registrations_;
}

bool WorkerAgent::SleepOrStop(absl::Duration duration) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stop_), duration);
  return stop_;
}

bool WorkerAgent::RegisterOnce() {
  v1::RegisterWorkerRequest request;
  request.set_name(options_.name);
  request.set_address(options_.address);
  *request.mutable_capacity() = options_.capacity;
  RefreshFreeBytes(request.mutable_capacity());
  for (const auto& [key, value] : options_.labels) (*request.mutable_labels())[key] = value;
  if (options_.running) {
    for (v1::RunningRank& r : options_.running()) *request.add_running() = std::move(r);
  }
  grpc::ClientContext context;
  SetDeadline(&context, options_.rpc_timeout);
  v1::RegisterWorkerResponse response;
  const grpc::Status status = stub_->Register(&context, request, &response);
  if (!status.ok()) {
    STRATA_LOG(WARNING) << "register with coordinator failed: "
                        << FromGrpcStatus(status, "WorkerService.Register");
    return false;
  }
  absl::Duration interval = absl::Nanoseconds(
      google::protobuf::util::TimeUtil::DurationToNanoseconds(response.heartbeat_interval()));
  if (interval <= absl::ZeroDuration()) interval = absl::Seconds(2);
  STRATA_LOG(INFO) << "registered as " << response.worker_id() << " (heartbeat every "
                   << absl::FormatDuration(interval) << ")";
  absl::MutexLock lock(&mu_);
  worker_id_ = response.worker_id();
  heartbeat_interval_ = interval;
  ++registrations_;
  return true;
}

bool WorkerAgent::HeartbeatOnce(const std::string& worker_id) {
  v1::HeartbeatRequest request;
  request.set_worker_id(worker_id);
  *request.mutable_free() = options_.capacity;
  RefreshFreeBytes(request.mutable_free());
  if (options_.running) {
    for (v1::RunningRank& r : options_.running()) *request.add_running() = std::move(r);
  }
  grpc::ClientContext context;
  SetDeadline(&context, options_.rpc_timeout);
  v1::HeartbeatResponse response;
  const grpc::Status status = stub_->Heartbeat(&context, request, &response);
  if (!status.ok()) {
    STRATA_LOG(WARNING) << "heartbeat failed: "
                        << FromGrpcStatus(status, "WorkerService.Heartbeat");
    return true;  // Keep the id; the coordinator may just be restarting.
  }
  if (response.reregister()) {
    STRATA_LOG(INFO) << "coordinator does not know " << worker_id << "; registering again";
    return false;
  }
  return true;
}

void WorkerAgent::Loop() {
  absl::Duration backoff = options_.min_backoff;
  while (true) {
    std::string worker_id;
    absl::Duration interval;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      worker_id = worker_id_;
      interval = heartbeat_interval_;
    }
    if (worker_id.empty()) {
      if (RegisterOnce()) {
        backoff = options_.min_backoff;
        continue;
      }
      if (SleepOrStop(backoff)) return;
      backoff = std::min(backoff * 2, options_.max_backoff);
      continue;
    }
    if (!HeartbeatOnce(worker_id)) {
      absl::MutexLock lock(&mu_);
      worker_id_.clear();
      continue;
    }
    if (SleepOrStop(interval)) return;
  }
}

}  // namespace strata
