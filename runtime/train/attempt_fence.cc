// See attempt_fence.h.
#include "runtime/train/attempt_fence.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "runtime/base/errno_status.h"
#include "runtime/base/status_macros.h"
#include "storage/atomic_file.h"

namespace strata {
namespace {

struct Claimant {
  std::string job;  // "" when no run claimed the directory yet.
  int64_t attempt = 0;
};

absl::StatusOr<Claimant> ReadClaimant(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Claimant();
  std::stringstream text;
  text << in.rdbuf();
  const std::vector<std::string> words = absl::StrSplit(text.str(), ' ', absl::SkipWhitespace());
  Claimant claimant;
  if (words.size() != 2 || !absl::SimpleAtoi(words[1], &claimant.attempt) ||
      claimant.attempt < 1) {
    return absl::DataLossError(absl::StrCat(path, " does not hold \"JOB ATTEMPT\""));
  }
  claimant.job = words[0];
  if (!claimant.job.empty() && claimant.job.back() == '\n') claimant.job.pop_back();
  return claimant;
}

}  // namespace

absl::StatusOr<AttemptFence> AttemptFence::Claim(const std::string& dir, const std::string& job,
                                                 int64_t attempt) {
  if (attempt < 1) return absl::InvalidArgumentError("attempt numbers start at 1");
  if (job.empty() || job.find_first_of(" \t\n") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("job \"", job, "\" must be one word"));
  }
  STRATA_RETURN_IF_ERROR(MakeDirs(dir));
  const std::string lock_path = dir + "/ATTEMPT.lock";
  const int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "open " + lock_path);
  AttemptFence fence(dir + "/ATTEMPT", job, attempt, fd);
  // Exclusive: waits for a write of an older attempt under way, then no new one starts until
  // the claim is in place.
  if (flock(fd, LOCK_EX) != 0) return ErrnoStatus(errno, "lock " + lock_path);
  const Hold claiming(fd);
  STRATA_ASSIGN_OR_RETURN(const Claimant current, ReadClaimant(fence.path_));
  if (current.job == job && current.attempt > attempt) {
    return absl::FailedPreconditionError(
        absl::StrCat("attempt ", current.attempt, " of job ", job, " already writes here (",
                     fence.path_, "); attempt ", attempt, " does not start"));
  }
  if (current.job != job || current.attempt != attempt) {
    STRATA_RETURN_IF_ERROR(
        WriteStringToFileAtomically(fence.path_, absl::StrCat(job, " ", attempt, "\n")));
  }
  struct stat st;
  if (stat(fence.path_.c_str(), &st) != 0) return ErrnoStatus(errno, "stat " + fence.path_);
  fence.inode_ = st.st_ino;
  fence.device_ = st.st_dev;
  return fence;
}

absl::StatusOr<std::optional<AttemptFence::Hold>> AttemptFence::CheckIfAny(
    std::optional<AttemptFence>& fence) {
  if (!fence.has_value()) return std::nullopt;
  STRATA_ASSIGN_OR_RETURN(Hold hold, fence->Check());
  return std::optional<Hold>(std::move(hold));
}

AttemptFence::Hold::~Hold() {
  if (fd_ >= 0) flock(fd_, LOCK_UN);
}

AttemptFence::AttemptFence(AttemptFence&& other) noexcept
    : path_(std::move(other.path_)),
      job_(std::move(other.job_)),
      attempt_(other.attempt_),
      lock_fd_(std::exchange(other.lock_fd_, -1)),
      inode_(other.inode_),
      device_(other.device_) {}

AttemptFence::~AttemptFence() {
  if (lock_fd_ >= 0) close(lock_fd_);
}

absl::StatusOr<AttemptFence::Hold> AttemptFence::Check() {
  if (flock(lock_fd_, LOCK_SH) != 0) return ErrnoStatus(errno, "lock " + path_ + ".lock");
  Hold hold(lock_fd_);
  struct stat st;
  if (stat(path_.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, " is gone: the directory is no longer this attempt's"));
  }
  if (st.st_ino == inode_ && st.st_dev == device_) return hold;
  STRATA_ASSIGN_OR_RETURN(const Claimant current, ReadClaimant(path_));
  if (current.job != job_ || current.attempt != attempt_) {
    return absl::FailedPreconditionError(absl::StrCat(
        current.job == job_ ? absl::StrCat("attempt ", current.attempt, " of the job")
                            : absl::StrCat("job ", current.job),
        " now writes here (", path_, "); attempt ", attempt_, " of job ", job_,
        " stops without writing"));
  }
  inode_ = st.st_ino;
  device_ = st.st_dev;
  return hold;
}

}  // namespace strata
