// Keeps two attempts of one job from writing the same checkpoint directory at once. On shared
// storage, a rank cut off from the coordinator keeps training while the coordinator restarts
// its job elsewhere; both would append to one step log and write one checkpoint directory. The
// newer attempt claims the directory by writing "<job> <attempt>" to <dir>/ATTEMPT
// (crash-safe); an older attempt (or another job's run) sees that before its next write and
// stops without writing.
#ifndef STRATA_RUNTIME_TRAIN_ATTEMPT_FENCE_H_
#define STRATA_RUNTIME_TRAIN_ATTEMPT_FENCE_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

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

  // OK while the directory is still this attempt's; FAILED_PRECONDITION naming the attempt or
  // job that claimed it since. One stat per call; the file is read only when it was replaced.
  absl::Status Check();

 private:
  AttemptFence(std::string path, std::string job, int64_t attempt)
      : path_(std::move(path)), job_(std::move(job)), attempt_(attempt) {}

  std::string path_;
  std::string job_;
  int64_t attempt_;
  ino_t inode_ = 0;  // Of the ATTEMPT file last read.
  dev_t device_ = 0;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_TRAIN_ATTEMPT_FENCE_H_
