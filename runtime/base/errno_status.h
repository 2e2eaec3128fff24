// Converts errno values into absl::Status with a code chosen by the rules in absl/status.h and
// a message that names what failed (file, offset, syscall), so callers can report it as is.
#ifndef STRATA_RUNTIME_BASE_ERRNO_STATUS_H_
#define STRATA_RUNTIME_BASE_ERRNO_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace strata {

// The status code that best describes `errnum` (ENOENT -> kNotFound, ENOSPC ->
// kResourceExhausted, EACCES -> kPermissionDenied, EAGAIN -> kUnavailable, ...).
absl::StatusCode ErrnoToStatusCode(int errnum);

// A status for a failed system call: "<context>: <strerror> (errno N)".
// `errnum` 0 yields OK.
absl::Status ErrnoStatus(int errnum, absl::string_view context);

}  // namespace strata

#endif  // STRATA_RUNTIME_BASE_ERRNO_STATUS_H_
