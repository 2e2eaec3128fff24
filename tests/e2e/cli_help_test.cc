// Every Strata binary answers --help with its usage and flags on stdout and exit 0, and
// rejects unknown commands, flags and arguments with a usage error.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace strata {
namespace {

using ::strata::testing::ProcessResult;
using ::strata::testing::RunProcess;
using ::strata::testing::TestTmpDir;
using ::testing::HasSubstr;
using ::testing::Not;

struct Binary {
  std::string path;
  std::vector<std::string> expected;  // Text the help must contain.
};

class HelpTest : public ::testing::TestWithParam<Binary> {};

TEST_P(HelpTest, HelpPrintsUsageAndFlagsAndExitsZero) {
  const Binary& binary = GetParam();
  absl::StatusOr<ProcessResult> result = RunProcess({binary.path, "--help"}, TestTmpDir());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0) << result->err;
  EXPECT_THAT(result->out, HasSubstr("Usage: "));
  for (const std::string& text : binary.expected) EXPECT_THAT(result->out, HasSubstr(text));
  // Only the binary's own flags, not Abseil's internals.
  EXPECT_THAT(result->out, Not(HasSubstr("--flagfile")));
}

TEST_P(HelpTest, UnknownFlagIsRejected) {
  absl::StatusOr<ProcessResult> result =
      RunProcess({GetParam().path, "--no_such_flag=1"}, TestTmpDir());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_NE(result->exit_code, 0);
  EXPECT_THAT(result->err, HasSubstr("no_such_flag"));
}

TEST_P(HelpTest, VersionIsPrinted) {
  absl::StatusOr<ProcessResult> result = RunProcess({GetParam().path, "--version"}, TestTmpDir());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_THAT(result->out, HasSubstr("strata 0.1.0"));
}

INSTANTIATE_TEST_SUITE_P(
    AllBinaries, HelpTest,
    ::testing::Values(
        Binary{"services/cli/strata", {"node list", "health", "--coordinator", "--output"}},
        Binary{"services/coordinator/strata-coordinator",
               {"--listen", "--port_file", "--heartbeat_timeout"}},
        Binary{"services/worker/strata-worker", {"--coordinator", "--nvme_paths", "--cores"}},
        Binary{"services/edge/strata-edge", {"--job", "--client_id", "--token"}}),
    [](const ::testing::TestParamInfo<Binary>& info) {
      std::string name = info.param.path.substr(info.param.path.rfind('/') + 1);
      for (char& c : name) {
        if (c == '-') c = '_';
      }
      return name;
    });

TEST(CliUsageTest, UnknownCommandIsAUsageError) {
  absl::StatusOr<ProcessResult> result = RunProcess({"services/cli/strata", "jobz"}, TestTmpDir());
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->exit_code, 2);
  EXPECT_THAT(result->err, HasSubstr("unknown command \"jobz\""));
}

TEST(CliUsageTest, NoCommandPrintsTheCommandList) {
  absl::StatusOr<ProcessResult> result = RunProcess({"services/cli/strata"}, TestTmpDir());
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->exit_code, 2);
  EXPECT_THAT(result->err, HasSubstr("node list"));
}

TEST(CliUsageTest, BadOutputFormatIsAUsageError) {
  absl::StatusOr<ProcessResult> result =
      RunProcess({"services/cli/strata", "--output=xml", "node", "list"}, TestTmpDir());
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->exit_code, 2);
  EXPECT_THAT(result->err, HasSubstr("--output must be table or json"));
}

TEST(CliUsageTest, UnreachableCoordinatorFailsWithItsAddress) {
  absl::StatusOr<ProcessResult> result = RunProcess(
      {"services/cli/strata", "--coordinator=localhost:1", "--timeout=2s", "node", "list"},
      TestTmpDir());
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->exit_code, 1);
  EXPECT_THAT(result->err, HasSubstr("localhost:1"));
  EXPECT_THAT(result->err, HasSubstr("UNAVAILABLE"));
}

TEST(DaemonUsageTest, PositionalArgumentsAreAUsageError) {
  for (const char* binary : {"services/coordinator/strata-coordinator",
                             "services/worker/strata-worker", "services/edge/strata-edge"}) {
    absl::StatusOr<ProcessResult> result = RunProcess({binary, "stray"}, TestTmpDir());
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result->exit_code, 2) << binary;
    EXPECT_THAT(result->err, HasSubstr("unexpected argument \"stray\"")) << binary;
  }
}

TEST(EdgeUsageTest, MissingRequiredFlagsIsAUsageError) {
  absl::StatusOr<ProcessResult> result = RunProcess({"services/edge/strata-edge"}, TestTmpDir());
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->exit_code, 2);
  EXPECT_THAT(result->err, HasSubstr("--job and --client_id are required"));
}

}  // namespace
}  // namespace strata
