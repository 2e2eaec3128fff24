// See resume_from.h.
#include "services/trainer/resume_from.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/base/errno_status.h"
#include "runtime/base/status_macros.h"
#include "storage/atomic_file.h"
#include "storage/checkpoint.h"

namespace strata {
namespace {

absl::Status CopyFile(const std::string& from, const std::string& to) {
  const int in = open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return ErrnoStatus(errno, "open " + from);
  const int out = open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    absl::Status s = ErrnoStatus(errno, "create " + to);
    close(in);
    return s;
  }
  std::vector<char> buffer(4 << 20);
  absl::Status status;
  while (status.ok()) {
    const ssize_t n = read(in, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) status = ErrnoStatus(errno, "read " + from);
    if (n <= 0) break;
    status = WriteAll(out, buffer.data(), static_cast<size_t>(n), to);
  }
  close(in);
  if (close(out) != 0 && status.ok()) status = ErrnoStatus(errno, "close " + to);
  return status;
}

}  // namespace

absl::Status SeedFromCheckpoint(const std::string& source, const std::string& root, int keep_last,
                                const std::function<void(const std::string&)>& log) {
  if (source.empty()) return absl::OkStatus();
  if (root.empty()) {
    return absl::InvalidArgumentError(
        "spec.checkpoint.resume_from: the run keeps no checkpoints to resume into");
  }
  absl::StatusOr<CheckpointInfoOnDisk> from = CheckpointManager::Verify(source);
  if (!from.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.checkpoint.resume_from: ", source,
                     " is not a valid checkpoint: ", from.status().message()));
  }
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<CheckpointManager> manager,
                          CheckpointManager::Create({root, keep_last}));
  if (!manager->Steps().empty()) {
    log(absl::StrCat("resume_from ", source, ": ", root,
                     " already holds checkpoints; continuing from them"));
    return absl::OkStatus();
  }
  STRATA_ASSIGN_OR_RETURN(CheckpointManager::Writer writer, manager->Begin(from->step));
  for (const std::string& file : from->files) {
    STRATA_RETURN_IF_ERROR(
        CopyFile(absl::StrCat(source, "/", file), absl::StrCat(writer.dir(), "/", file)));
  }
  STRATA_RETURN_IF_ERROR(writer.Commit(from->position));
  log(absl::StrCat("resume_from ", source, ": starting at step ", from->step));
  return absl::OkStatus();
}

}  // namespace strata
