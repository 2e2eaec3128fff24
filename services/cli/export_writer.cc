// See export_writer.h.
#include "services/cli/export_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "runtime/base/errno_status.h"
#include "storage/atomic_file.h"

namespace strata {

ExportWriter::~ExportWriter() {
  if (fd_ >= 0) {
    close(fd_);
    unlink(absl::StrCat(dir_, "/", file_, ".part").c_str());
  }
}

absl::Status ExportWriter::Write(const v1::ExportChunk& chunk) {
  if (chunk.finished()) {
    if (fd_ >= 0) return absl::DataLossError(absl::StrCat(file_, " ended unfinished"));
    return absl::OkStatus();
  }
  const std::string& name = chunk.file();
  if (name.empty() || name.size() > 255 || name == "." || name == ".." ||
      name.find('/') != std::string::npos || name.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("the export names a file that is not a plain name");
  }
  if (fd_ < 0) {
    if (chunk.offset() != 0) {
      return absl::DataLossError(absl::StrCat(name, " starts at offset ", chunk.offset()));
    }
    if (absl::Status s = MakeDirs(dir_); !s.ok()) return s;
    file_ = name;
    written_ = 0;
    // Never over an existing file or through a link: the names come from a worker.
    const std::string part = absl::StrCat(dir_, "/", name, ".part");
    struct stat st;
    if (lstat(absl::StrCat(dir_, "/", name).c_str(), &st) == 0) {
      return absl::AlreadyExistsError(
          absl::StrCat(dir_, "/", name, " already exists; export into a new or empty directory"));
    }
    fd_ = open(part.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd_ < 0) return ErrnoStatus(errno, absl::StrCat("create ", part));
  } else if (name != file_ || chunk.offset() != written_) {
    return absl::DataLossError(absl::StrCat("expected ", file_, " at offset ", written_, ", got ",
                                            name, " at ", chunk.offset()));
  }
  const std::string& data = chunk.data();
  for (size_t done = 0; done < data.size();) {
    const ssize_t n = write(fd_, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("write ", file_));
    done += static_cast<size_t>(n);
  }
  written_ += static_cast<int64_t>(data.size());
  if (!chunk.file_done()) return absl::OkStatus();
  const std::string part = absl::StrCat(dir_, "/", file_, ".part");
  const std::string final_path = absl::StrCat(dir_, "/", file_);
  const bool synced = fsync(fd_) == 0;
  const int err = errno;
  close(fd_);
  fd_ = -1;
  if (!synced) return ErrnoStatus(err, absl::StrCat("fsync ", part));
  if (rename(part.c_str(), final_path.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename ", part));
  }
  if (absl::Status s = SyncParentDirectory(final_path); !s.ok()) return s;
  files_.push_back(file_);
  bytes_ += written_;
  return absl::OkStatus();
}

}  // namespace strata
