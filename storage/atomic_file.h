// Crash-safe file replacement: write a temporary file beside the target, fsync it, rename it
// over the target, fsync the directory. A crash at any point leaves either the old file or the
// new one, never a mix. Also loop-until-done write/read helpers that name the file and offset.
#ifndef STRATA_STORAGE_ATOMIC_FILE_H_
#define STRATA_STORAGE_ATOMIC_FILE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace strata {

// Calls `fill(fd)` on a new temporary file, then commits it as `path`. On any failure the
// temporary file is removed and `path` is untouched.
absl::Status WriteFileAtomically(const std::string& path,
                                 const std::function<absl::Status(int fd)>& fill);

absl::Status WriteStringToFileAtomically(const std::string& path, absl::string_view content);

// Writes all `size` bytes at the file's current position (retrying EINTR and short writes).
// `what` names the file in errors.
absl::Status WriteAll(int fd, const void* data, size_t size, absl::string_view what);

// Reads exactly `size` bytes at `offset` (retrying EINTR and short reads); a file that ends
// first is kOutOfRange naming the offset.
absl::Status PreadAll(int fd, void* data, size_t size, int64_t offset, absl::string_view what);

// mkdir -p: creates `path` and any missing parents (existing directories are fine).
absl::Status MakeDirs(const std::string& path);

// fsync of the directory holding `path`, so a rename in it is durable.
absl::Status SyncParentDirectory(const std::string& path);

}  // namespace strata

#endif  // STRATA_STORAGE_ATOMIC_FILE_H_
