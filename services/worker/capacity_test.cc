// Capacity detection on this machine (cores, memory, NVMe directories created and inspected,
// bad paths named), and the NVMe space gauges a worker serves on /metrics, checked against
// statvfs of the same directories.
#include "services/worker/capacity.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
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

// "name{labels} value" lines of the exposition text -> value, by "name{labels}".
std::map<std::string, double> Samples(const std::string& text) {
  std::map<std::string, double> samples;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    double value = 0;
    EXPECT_TRUE(absl::SimpleAtod(line.substr(space + 1), &value)) << line;
    samples[std::string(line.substr(0, space))] = value;
  }
  return samples;
}

TEST(CapacityTest, NvmeSpaceMetricsFollowStatvfs) {
  const std::string nvme0 = TestDir() + "/metrics-nvme0", nvme1 = TestDir() + "/metrics-nvme1";
  const std::string missing = TestDir() + "/metrics-not-there";
  ASSERT_EQ(mkdir(nvme0.c_str(), 0755), 0);
  ASSERT_EQ(mkdir(nvme1.c_str(), 0755), 0);
  MetricsWriter out;
  CollectNvmeMetrics({nvme0, missing, nvme1}, &out);
  struct statvfs fs;
  ASSERT_EQ(statvfs(nvme0.c_str(), &fs), 0);
  const double size = static_cast<double>(fs.f_blocks) * static_cast<double>(fs.f_frsize);
  const double free_now = static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize);
  ASSERT_GT(size, 0);

  const std::map<std::string, double> samples = Samples(out.text());
  EXPECT_EQ(samples.size(), 4u) << out.text();  // Two per inspected path, none for `missing`.
  for (const std::string& dir : {nvme0, nvme1}) {
    const std::string label = "{path=\"" + dir + "\"}";
    ASSERT_EQ(samples.count("strata_worker_nvme_capacity_bytes" + label), 1u) << out.text();
    ASSERT_EQ(samples.count("strata_worker_nvme_free_bytes" + label), 1u) << out.text();
    // MetricsWriter prints 6 significant digits (absl::StrCat of a double).
    EXPECT_NEAR(samples.at("strata_worker_nvme_capacity_bytes" + label), size, size * 1e-5);
    // Other processes write to the same file system: free space may move a little.
    EXPECT_NEAR(samples.at("strata_worker_nvme_free_bytes" + label), free_now,
                free_now * 1e-5 + (256 << 20));
    EXPECT_LE(samples.at("strata_worker_nvme_free_bytes" + label), size);
  }
  EXPECT_THAT(out.text(), ::testing::Not(HasSubstr(missing)));
  // Each family once, as a gauge, its samples together.
  EXPECT_THAT(out.text(), HasSubstr("# TYPE strata_worker_nvme_free_bytes gauge\n"
                                    "strata_worker_nvme_free_bytes{path=\"" +
                                    nvme0 + "\"} "));
  const size_t free_family = out.text().find("strata_worker_nvme_free_bytes{");
  const size_t capacity_family = out.text().find("# HELP strata_worker_nvme_capacity_bytes");
  ASSERT_NE(capacity_family, std::string::npos);
  EXPECT_LT(free_family, capacity_family);
  EXPECT_EQ(out.text().find("strata_worker_nvme_free_bytes{", capacity_family), std::string::npos);
}

TEST(CapacityTest, NoNvmePathsNoNvmeSeries) {
  MetricsWriter out;
  CollectNvmeMetrics({}, &out);
  EXPECT_EQ(out.text(), "");
}

}  // namespace
}  // namespace strata
