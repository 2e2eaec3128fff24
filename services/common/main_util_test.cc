#include "services/common/main_util.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace strata {
namespace {

std::string TestDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

TEST(WritePortFileTest, WritesPortAndReplacesOldContent) {
  const std::string path = TestDir() + "/port";
  ASSERT_TRUE(WritePortFile(path, 12345).ok());
  ASSERT_TRUE(WritePortFile(path, 7070).ok());
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "7070\n");
}

TEST(WritePortFileTest, MissingDirectoryNamesThePath) {
  absl::Status status = WritePortFile(TestDir() + "/missing/dir/port", 1);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(status.message().find("missing/dir/port"), absl::string_view::npos);
}

TEST(ExitCodeTest, UsageErrorsAreTwoOtherFailuresOne) {
  EXPECT_EQ(ExitCode("strata-test", absl::OkStatus()), 0);
  EXPECT_EQ(ExitCode("strata-test", absl::UnavailableError("port taken")), 1);
  EXPECT_EQ(ExitCode("strata-test", UsageError(absl::NotFoundError("--tokens_file: missing"))), 2);
  EXPECT_TRUE(UsageError(absl::OkStatus()).ok());
}

}  // namespace
}  // namespace strata
