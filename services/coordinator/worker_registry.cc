// See worker_registry.h.
#include "services/coordinator/worker_registry.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace strata {
namespace {

using ::google::protobuf::util::TimeUtil;

google::protobuf::Timestamp ToProto(absl::Time time) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(time));
}

google::protobuf::Duration ToProto(absl::Duration duration) {
  return TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(duration));
}

absl::Status ValidateCapacity(const v1::WorkerCapacity& capacity) {
  if (capacity.cores() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("capacity.cores must be positive, got ", capacity.cores()));
  }
  if (capacity.memory_bytes() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("capacity.memory_bytes must be positive, got ", capacity.memory_bytes()));
  }
  for (int i = 0; i < capacity.nvme_paths_size(); ++i) {
    const v1::NvmePath& path = capacity.nvme_paths(i);
    if (path.path().empty() || path.path()[0] != '/') {
      return absl::InvalidArgumentError(absl::StrCat(
          "capacity.nvme_paths[", i, "].path must be absolute, got \"", path.path(), "\""));
    }
    if (path.capacity_bytes() < 0 || path.free_bytes() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("capacity.nvme_paths[", i, "]: byte counts must not be negative"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerRegistry>> WorkerRegistry::Create(Options options) {
  if (options.heartbeat_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("heartbeat_interval must be positive");
  }
  if (options.heartbeat_timeout <= options.heartbeat_interval) {
    return absl::InvalidArgumentError(
        absl::StrCat("heartbeat_timeout (", absl::FormatDuration(options.heartbeat_timeout),
                     ") must exceed heartbeat_interval (",
                     absl::FormatDuration(options.heartbeat_interval), ")"));
  }
  return std::unique_ptr<WorkerRegistry>(new WorkerRegistry(std::move(options)));
}

absl::StatusOr<v1::RegisterWorkerResponse> WorkerRegistry::Register(
    const v1::RegisterWorkerRequest& request) {
  const std::string& id = request.name();
  if (id.empty() || id.size() > 63 ||
      id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
          std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("name \"", id, "\" must be 1-63 characters of [A-Za-z0-9._-]"));
  }
  if (absl::Status status = ValidateCapacity(request.capacity()); !status.ok()) return status;

  const absl::Time now = options_.clock();
  absl::MutexLock lock(&mu_);
  Entry& entry = workers_[id];
  entry.last_heartbeat = now;
  v1::WorkerInfo& info = entry.info;
  info.set_worker_id(id);
  info.set_name(request.name());
  info.set_address(request.address());
  *info.mutable_capacity() = request.capacity();
  *info.mutable_free() = request.capacity();
  *info.mutable_labels() = request.labels();
  *info.mutable_last_heartbeat() = ToProto(now);
  info.set_lost(false);

  v1::RegisterWorkerResponse response;
  response.set_worker_id(id);
  *response.mutable_heartbeat_interval() = ToProto(options_.heartbeat_interval);
  *response.mutable_heartbeat_timeout() = ToProto(options_.heartbeat_timeout);
  return response;
}

absl::StatusOr<v1::HeartbeatResponse> WorkerRegistry::Heartbeat(
    const v1::HeartbeatRequest& request) {
  v1::HeartbeatResponse response;
  const absl::Time now = options_.clock();
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(request.worker_id());
  if (it == workers_.end()) {
    response.set_reregister(true);
    return response;
  }
  Entry& entry = it->second;
  entry.last_heartbeat = now;
  *entry.info.mutable_last_heartbeat() = ToProto(now);
  if (request.has_free()) *entry.info.mutable_free() = request.free();
  entry.info.set_lost(false);
  return response;
}

v1::ListWorkersResponse WorkerRegistry::List(bool include_lost) const {
  v1::ListWorkersResponse response;
  const absl::Time now = options_.clock();
  absl::MutexLock lock(&mu_);
  for (const auto& [id, entry] : workers_) {
    const bool lost = IsLostLocked(entry, now);
    if (lost && !include_lost) continue;
    v1::WorkerInfo* info = response.add_workers();
    *info = entry.info;
    info->set_lost(lost);
  }
  return response;
}

bool WorkerRegistry::IsLostLocked(const Entry& entry, absl::Time now) const {
  return now - entry.last_heartbeat > options_.heartbeat_timeout;
}

}  // namespace strata
