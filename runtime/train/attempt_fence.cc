// See attempt_fence.h.
#include "runtime/train/attempt_fence.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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
  AttemptFence fence(dir + "/ATTEMPT", job, attempt);
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
  STRATA_RETURN_IF_ERROR(fence.Check());
  return fence;
}

absl::Status AttemptFence::Check() {
  struct stat st;
  if (stat(path_.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, " is gone: the directory is no longer this attempt's"));
  }
  if (st.st_ino == inode_ && st.st_dev == device_) return absl::OkStatus();
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
  return absl::OkStatus();
}

}  // namespace strata
