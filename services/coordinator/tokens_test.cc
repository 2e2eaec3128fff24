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
  std::ofstream(dir + "/workers") << "w1 alpha\nw2 beta\n";
  std::ofstream(dir + "/bad") << "t1 alice extra\n";
  std::ofstream(dir + "/wildcard") << "w1 *\n";
  std::ofstream(dir + "/shared") << "w1 alpha\nw2 alpha\n";
  std::ofstream(dir + "/unsafe-user") << "t1 ../alice\n";
  std::ofstream(dir + "/quotas") << "t1 alice max_jobs=2 max_cores=8\nt2 bob\n";
  std::ofstream(dir + "/roles") << "t1 alice role=user\nt2 root role=operator max_jobs=1\n";
  std::ofstream(dir + "/bad-role") << "t1 alice role=admin\n";
  auto table = TokenTable::Load(dir + "/users", dir + "/workers");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_TRUE(table->has_users());
  EXPECT_TRUE(table->has_workers());
  EXPECT_FALSE(TokenTable::Load("", "")->has_users());
  auto bad = TokenTable::Load(dir + "/bad", "");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("\"extra\" is not a quota"));
  // A worker token names exactly one worker, and a worker has one token.
  EXPECT_THAT(TokenTable::Load("", dir + "/wildcard").status().message(),
              HasSubstr("worker \"*\" must be"));
  EXPECT_THAT(TokenTable::Load("", dir + "/shared").status().message(),
              HasSubstr("worker alpha has more than one token"));
  EXPECT_THAT(TokenTable::Load(dir + "/unsafe-user", "").status().message(),
              HasSubstr("user \"../alice\" must be"));
  auto quotas = TokenTable::Load(dir + "/quotas", "");
  ASSERT_TRUE(quotas.ok()) << quotas.status();
  EXPECT_EQ(quotas->Quota("alice").max_jobs, 2);
  EXPECT_EQ(quotas->Quota("alice").max_cores, 8);
  EXPECT_EQ(quotas->Quota("bob").max_jobs, 0);
  auto roles = TokenTable::Load(dir + "/roles", "");
  ASSERT_TRUE(roles.ok()) << roles.status();
  EXPECT_FALSE(roles->IsOperator("alice"));
  EXPECT_TRUE(roles->IsOperator("root"));
  EXPECT_FALSE(quotas->IsOperator("alice"));
  EXPECT_TRUE(TokenTable::Load("", "")->IsOperator("anyone"));  // No user table: open.
  std::string user;
  EXPECT_TRUE(roles->UserForToken("t2", &user).ok());
  EXPECT_EQ(user, "root");
  EXPECT_EQ(roles->UserForToken("t3", &user).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(roles->UserForToken("", &user).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(TokenTable::Load(dir + "/bad-role", "").status().message(),
              HasSubstr("role \"admin\" is not a role"));
  EXPECT_THAT(TokenTable::Load("", dir + "/missing").status().message(),
              HasSubstr("--worker_tokens_file"));
}

}  // namespace
}  // namespace strata
