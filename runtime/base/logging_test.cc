#include "runtime/base/logging.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

class LoggingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLogSink([this](LogSeverity, absl::string_view line) { lines_.emplace_back(line); });
  }
  void TearDown() override {
    SetLogSink(nullptr);
    SetMinLogSeverity(LogSeverity::kInfo);
  }
  std::vector<std::string> lines_;
};

TEST_F(LoggingTest, FormatsSeverityTimeFileAndText) {
  STRATA_LOG(WARNING) << "disk " << 3 << " is slow";
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_THAT(lines_[0], MatchesRegex("W[0-9]{4} [0-9:.]{15} [0-9]+ logging_test.cc:[0-9]+\\] "
                                      "disk 3 is slow"));
}

TEST_F(LoggingTest, DropsLinesBelowMinimumSeverityWithoutEvaluatingThem) {
  SetMinLogSeverity(LogSeverity::kWarning);
  int evaluated = 0;
  auto count = [&evaluated] { return ++evaluated; };
  STRATA_LOG(INFO) << "hidden " << count();
  STRATA_LOG(ERROR) << "shown " << count();
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_THAT(lines_[0], HasSubstr("shown 1"));
  EXPECT_EQ(evaluated, 1);
}

TEST(ParseLogSeverityTest, AcceptsKnownNamesOnly) {
  LogSeverity severity = LogSeverity::kInfo;
  EXPECT_TRUE(ParseLogSeverity("DEBUG", &severity));
  EXPECT_EQ(severity, LogSeverity::kDebug);
  EXPECT_TRUE(ParseLogSeverity("warn", &severity));
  EXPECT_EQ(severity, LogSeverity::kWarning);
  EXPECT_FALSE(ParseLogSeverity("loud", &severity));
  EXPECT_EQ(severity, LogSeverity::kWarning);
}

}  // namespace
}  // namespace strata
