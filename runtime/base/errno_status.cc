// See errno_status.h.
#include "runtime/base/errno_status.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace strata {

absl::StatusCode ErrnoToStatusCode(int errnum) {
  switch (errnum) {
    case 0:
      return absl::StatusCode::kOk;
    case ENOENT:
    case ENOTDIR:
    case ESRCH:
      return absl::StatusCode::kNotFound;
    case EEXIST:
      return absl::StatusCode::kAlreadyExists;
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::StatusCode::kPermissionDenied;
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EFBIG:
      return absl::StatusCode::kResourceExhausted;
    case EINVAL:
    case EBADF:
    case ENAMETOOLONG:
    case EISDIR:
    case ENOTEMPTY:
      return absl::StatusCode::kInvalidArgument;
    case EAGAIN:
    case EINTR:
    case EBUSY:
    case ECONNREFUSED:
    case ECONNRESET:
    case EPIPE:
    case ETIMEDOUT:
      return absl::StatusCode::kUnavailable;
    case ENOSYS:
    case EOPNOTSUPP:
      return absl::StatusCode::kUnimplemented;
    case EIO:
      return absl::StatusCode::kDataLoss;
    default:
      return absl::StatusCode::kUnknown;
  }
}

absl::Status ErrnoStatus(int errnum, absl::string_view context) {
  if (errnum == 0) return absl::OkStatus();
  char buf[256];
  // GNU strerror_r returns the message (possibly a static string, not buf).
  const char* text = strerror_r(errnum, buf, sizeof(buf));
  return absl::Status(ErrnoToStatusCode(errnum),
                      absl::StrCat(context, ": ", text, " (errno ", errnum, ")"));
}

}  // namespace strata
