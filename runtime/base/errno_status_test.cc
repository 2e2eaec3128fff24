#include "runtime/base/errno_status.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/base/status_macros.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

TEST(ErrnoStatusTest, ZeroIsOk) { EXPECT_TRUE(ErrnoStatus(0, "anything").ok()); }

TEST(ErrnoStatusTest, RealFailedOpenNamesPathAndReason) {
  const char* path = "/nonexistent-strata-dir/file.bin";
  ASSERT_EQ(open(path, O_RDONLY), -1);
  absl::Status status = ErrnoStatus(errno, absl::StrCat("open ", path));
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_THAT(status.message(), HasSubstr("No such file or directory"));
  EXPECT_THAT(status.message(), HasSubstr("errno 2"));
}

TEST(ErrnoStatusTest, CodesFollowRetryRules) {
  EXPECT_EQ(ErrnoToStatusCode(ENOSPC), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoToStatusCode(EACCES), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoToStatusCode(EAGAIN), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrnoToStatusCode(EIO), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ErrnoToStatusCode(EINVAL), absl::StatusCode::kInvalidArgument);
}

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError(absl::StrCat(x, " is odd"));
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  STRATA_ASSIGN_OR_RETURN(int half, Half(x));
  STRATA_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

absl::Status CheckEven(int x) {
  STRATA_RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(StatusMacrosTest, PropagateFirstError) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().message(), "3 is odd");
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(5).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata
