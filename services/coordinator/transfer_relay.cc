// See transfer_relay.h.
#include "services/coordinator/transfer_relay.h"

#include "absl/strings/str_cat.h"

namespace strata {

int64_t TransferRelay::Open(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  const int64_t id = next_id_++;
  transfers_[id].worker_id = worker_id;
  return id;
}

absl::Status TransferRelay::Push(const v1::ExportChunk& chunk, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto open = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return transfers_.find(chunk.transfer_id()) != transfers_.end();
  };
  if (!open()) {
    return absl::NotFoundError(absl::StrCat("transfer ", chunk.transfer_id(), " is not open"));
  }
  if (transfers_[chunk.transfer_id()].worker_id != chunk.worker_id()) {
    return absl::PermissionDeniedError(
        absl::StrCat("transfer ", chunk.transfer_id(), " is not for worker ", chunk.worker_id()));
  }
  auto room = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !open() || transfers_[chunk.transfer_id()].chunks.size() < kMaxBufferedChunks;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&room), timeout)) {
    return absl::DeadlineExceededError("the reader of the export does not keep up");
  }
  if (!open()) return absl::NotFoundError("the reader of the export went away");
  transfers_[chunk.transfer_id()].chunks.push_back(chunk);
  return absl::OkStatus();
}

absl::StatusOr<v1::ExportChunk> TransferRelay::Pop(int64_t transfer_id, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = transfers_.find(transfer_id);
    return it == transfers_.end() || !it->second.chunks.empty();
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  auto it = transfers_.find(transfer_id);
  if (it == transfers_.end()) return absl::NotFoundError("transfer closed");
  if (it->second.chunks.empty()) {
    return absl::DeadlineExceededError(absl::StrCat(
        "worker ", it->second.worker_id, " sent nothing for ", absl::FormatDuration(timeout)));
  }
  v1::ExportChunk chunk = std::move(it->second.chunks.front());
  it->second.chunks.pop_front();
  return chunk;
}

void TransferRelay::Close(int64_t transfer_id) {
  absl::MutexLock lock(&mu_);
  transfers_.erase(transfer_id);
}

}  // namespace strata
