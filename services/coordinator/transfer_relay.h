// Relays a job's export from the worker that holds it to the user who asked for it, without
// storing it: JobService.Export opens a transfer for a worker and pops chunks; the worker's
// UploadExport pushes them. The buffer holds a few chunks, so a slow reader slows the worker
// down (backpressure) instead of growing the coordinator's memory. A transfer accepts chunks
// only from the worker it was opened for.
#ifndef STRATA_SERVICES_COORDINATOR_TRANSFER_RELAY_H_
#define STRATA_SERVICES_COORDINATOR_TRANSFER_RELAY_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/strata/v1/job.pb.h"

namespace strata {

class TransferRelay {
 public:
  static constexpr size_t kMaxBufferedChunks = 8;

  // A new transfer whose chunks must come from `worker_id`.
  int64_t Open(const std::string& worker_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Worker side: queues `chunk` for its transfer, waiting up to `timeout` for room.
  // NOT_FOUND for a transfer that is unknown or closed (the reader went away),
  // PERMISSION_DENIED for one opened for another worker, DEADLINE_EXCEEDED when the reader
  // does not keep up.
  absl::Status Push(const v1::ExportChunk& chunk, absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);
  // Reader side: the next chunk, waiting up to `timeout` (DEADLINE_EXCEEDED).
  absl::StatusOr<v1::ExportChunk> Pop(int64_t transfer_id, absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Close(int64_t transfer_id) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Transfer {
    std::string worker_id;
    std::deque<v1::ExportChunk> chunks;
  };

  absl::Mutex mu_;
  std::map<int64_t, Transfer> transfers_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace strata

#endif  // STRATA_SERVICES_COORDINATOR_TRANSFER_RELAY_H_
