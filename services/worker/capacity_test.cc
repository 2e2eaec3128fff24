#include "services/worker/capacity.h"

#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

std::string TestDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

TEST(CapacityTest, DetectsMachineAndCreatesNvmeDirectories) {
  CapacityOptions options;
  options.nvme_paths = {TestDir() + "/nvme0", TestDir() + "/nvme1"};
  absl::StatusOr<v1::WorkerCapacity> capacity = DetectCapacity(options);
  ASSERT_TRUE(capacity.ok()) << capacity.status();
  EXPECT_GE(capacity->cores(), 1);
  EXPECT_GT(capacity->memory_bytes(), int64_t{256} << 20);
  ASSERT_EQ(capacity->nvme_paths_size(), 2);
  for (const v1::NvmePath& path : capacity->nvme_paths()) {
    struct stat st;
    EXPECT_EQ(stat(path.path().c_str(), &st), 0) << path.path();
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_GT(path.free_bytes(), 0);
  }
}

TEST(CapacityTest, OverridesWin) {
  CapacityOptions options;
  options.cores = 3;
  options.memory_bytes = int64_t{5} << 30;
  absl::StatusOr<v1::WorkerCapacity> capacity = DetectCapacity(options);
  ASSERT_TRUE(capacity.ok());
  EXPECT_EQ(capacity->cores(), 3);
  EXPECT_EQ(capacity->memory_bytes(), int64_t{5} << 30);
}

TEST(CapacityTest, BadNvmePathsAreRejectedByName) {
  CapacityOptions options;
  options.nvme_paths = {"relative/dir"};
  EXPECT_THAT(DetectCapacity(options).status().message(), HasSubstr("relative/dir"));
  options.nvme_paths = {"/proc/strata-cannot-create"};
  absl::Status status = DetectCapacity(options).status();
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("/proc/strata-cannot-create"));
}

}  // namespace
}  // namespace strata
