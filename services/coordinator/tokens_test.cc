// Token files: "TOKEN NAME" lines with comments; malformed lines are refused with file:line.
#include "services/coordinator/tokens.h"

#include <cstdlib>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

TEST(TokenTableTest, LoadsUsersAndWorkersAndRefusesBadFiles) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  std::ofstream(dir + "/users") << "# users\nt1 alice\n\nt2 bob\n";
  std::ofstream(dir + "/workers") << "w1 alpha\nw2 *\n";
  std::ofstream(dir + "/bad") << "t1 alice extra\n";
  auto table = TokenTable::Load(dir + "/users", dir + "/workers");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_TRUE(table->has_users());
  EXPECT_TRUE(table->has_workers());
  EXPECT_FALSE(TokenTable::Load("", "")->has_users());
  auto bad = TokenTable::Load(dir + "/bad", "");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("bad:1: expected \"TOKEN NAME\""));
  EXPECT_THAT(TokenTable::Load("", dir + "/missing").status().message(),
              HasSubstr("--worker_tokens_file"));
}

}  // namespace
}  // namespace strata
