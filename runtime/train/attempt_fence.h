// Keeps two attempts of one job from writing the same checkpoint directory at once. On shared
// storage, a rank cut off from the coordinator keeps training while the coordinator restarts
// its job elsewhere; both would append to one step log and write one checkpoint directory. The
// newer attempt claims the directory by writing "<job> <attempt>" to <dir>/ATTEMPT
// (crash-safe); an older attempt (or another job's run) sees that before its next write and
// stops without writing. A write holds <dir>/ATTEMPT.lock shared from its check to its end, and
// a claim takes it exclusively, so no write of the older attempt lands after a newer claim.
#ifndef STRATA_RUNTIME_TRAIN_ATTEMPT_FENCE_H_
#define STRATA_RUNTIME_TRAIN_ATTEMPT_FENCE_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"

namespace strata {

class AttemptFence {
 public:
  // Claims `dir` (created if missing) for attempt `attempt` (>= 1) of job `job` (one word):
  // writes both to <dir>/ATTEMPT unless that file names a newer attempt of the same job, which
  // is FAILED_PRECONDITION. Ranks of one attempt may claim a directory together; another job
  // takes it over.
  static absl::StatusOr<AttemptFence> Claim(const std::string& dir, const std::string& job,
                                            int64_t attempt);

  // The directory held against newer claims while a write goes on; released when destroyed.
  class Hold {
   public:
    explicit Hold(int fd) : fd_(fd) {}
    Hold(Hold&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Hold& operator=(Hold&&) = delete;
    ~Hold();

   private:
    int fd_;
  };

  // Before a write: the directory held until the Hold goes, while it is still this attempt's;
  // FAILED_PRECONDITION naming the attempt or job that claimed it since. A lock and one stat
  // per call; the file is read only when it was replaced.
  absl::StatusOr<Hold> Check();
  // Check() of `fence` when there is one; nothing to hold without.
  static absl::StatusOr<std::optional<Hold>> CheckIfAny(std::optional<AttemptFence>& fence);

  AttemptFence(AttemptFence&& other) noexcept;
  AttemptFence& operator=(AttemptFence&&) = delete;
  ~AttemptFence();

 private:
  AttemptFence(std::string path, std::string job, int64_t attempt, int lock_fd)
      : path_(std::move(path)), job_(std::move(job)), attempt_(attempt), lock_fd_(lock_fd) {}

  std::string path_;
  std::string job_;
  int64_t attempt_;
  int lock_fd_;      // <dir>/ATTEMPT.lock, never replaced.
  ino_t inode_ = 0;  // Of the ATTEMPT file last read.
  dev_t device_ = 0;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_TRAIN_ATTEMPT_FENCE_H_
