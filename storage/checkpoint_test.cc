// Checkpoint commit, retention and recovery: a truncated or corrupted newest checkpoint is
// skipped (and reported) in favour of the previous good one, and a writer killed with SIGKILL
// in the middle of a checkpoint leaves the last committed one in charge.
#include "storage/checkpoint.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

std::string Root(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return std::string(tmp ? tmp : "/tmp") + "/" + name;
}

void WriteCheckpoint(CheckpointManager& manager, int64_t step, const std::string& payload) {
  auto writer = manager.Begin(step);
  ASSERT_TRUE(writer.ok()) << writer.status();
  std::ofstream(writer->dir() + "/weights.bin", std::ios::binary) << payload;
  std::ofstream(writer->dir() + "/optimizer.bin", std::ios::binary) << payload << payload;
  ASSERT_TRUE(writer->Commit({{"step", step}, {"cursor", step * 4}}).ok());
}

TEST(CheckpointTest, CommitsVerifiesAndKeepsTheNewest) {
  auto manager = CheckpointManager::Create({Root("a"), 2});
  ASSERT_TRUE(manager.ok());
  for (int64_t step : {10, 20, 30}) WriteCheckpoint(**manager, step, std::string(5000, 'x'));
  EXPECT_EQ((*manager)->Steps(), (std::vector<int64_t>{30, 20}));
  auto latest = (*manager)->LatestValid(nullptr);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->step, 30);
  EXPECT_EQ(latest->position["cursor"], 120);
  EXPECT_EQ(latest->files, (std::vector<std::string>{"optimizer.bin", "weights.bin"}));
}

TEST(CheckpointTest, ADirectoryStrataDidNotMakeIsNeverCleanedUp) {
  // Someone else's directory with a `*.tmp` entry and `ckpt-*` names: refused, untouched.
  const std::string foreign = Root("foreign");
  ASSERT_EQ(mkdir(foreign.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((foreign + "/work.tmp").c_str(), 0755), 0);
  std::ofstream(foreign + "/work.tmp/draft") << "theirs";
  ASSERT_EQ(mkdir((foreign + "/ckpt-0000000001").c_str(), 0755), 0);
  auto refused = CheckpointManager::Create({foreign, 1});
  EXPECT_THAT(refused.status().message(), HasSubstr("not a Strata checkpoint directory"));
  struct stat st;
  EXPECT_EQ(stat((foreign + "/work.tmp/draft").c_str(), &st), 0);
  EXPECT_EQ(stat((foreign + "/ckpt-0000000001").c_str(), &st), 0);
  // An empty directory is adopted (marked) and reopened later.
  const std::string empty = Root("empty");
  ASSERT_EQ(mkdir(empty.c_str(), 0755), 0);
  auto adopted = CheckpointManager::Create({empty, 1});
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  WriteCheckpoint(**adopted, 5, "w");
  EXPECT_TRUE(CheckpointManager::Create({empty, 1}).ok());
  EXPECT_EQ(stat((empty + "/.strata-checkpoints").c_str(), &st), 0);
}

TEST(CheckpointTest, TruncatedOrCorruptedNewestFallsBackToThePreviousGoodOne) {
  auto manager = CheckpointManager::Create({Root("b"), 5});
  for (int64_t step : {1, 2, 3}) WriteCheckpoint(**manager, step, std::string(4096, 'a' + step));
  const std::string newest = (*manager)->LatestValid(nullptr)->dir;
  truncate((newest + "/weights.bin").c_str(), 100);
  std::vector<std::string> problems;
  auto latest = (*manager)->LatestValid(&problems);
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->step, 2);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0], HasSubstr("weights.bin has 100 bytes"));
  // Flip a byte of step 2's optimizer state.
  {
    std::fstream f(latest->dir + "/optimizer.bin", std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(17);
    f.put('!');
  }
  problems.clear();
  latest = (*manager)->LatestValid(&problems);
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->step, 1);
  EXPECT_THAT(problems[1], HasSubstr("fails its checksum"));
}

TEST(CheckpointTest, WriterKilledMidCheckpointLeavesTheLastCommittedOne) {
  const std::string root = Root("c");
  {
    auto manager = CheckpointManager::Create({root, 3});
    WriteCheckpoint(**manager, 100, "committed");
  }
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    auto manager = CheckpointManager::Create({root, 3});
    auto writer = (*manager)->Begin(200);
    std::ofstream(writer->dir() + "/weights.bin") << std::string(1 << 20, 'n');
    (void)!write(ready[1], "1", 1);
    pause();  // Killed before Commit.
    _exit(0);
  }
  char byte;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  waitpid(pid, nullptr, 0);
  auto manager = CheckpointManager::Create({root, 3});  // Cleans the leftover .tmp directory.
  ASSERT_TRUE(manager.ok());
  auto latest = (*manager)->LatestValid(nullptr);
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->step, 100);
  struct stat st;
  EXPECT_NE(stat((root + "/ckpt-0000000200.tmp").c_str(), &st), 0);
}

TEST(CheckpointTest, NoCheckpointIsNotFound) {
  auto manager = CheckpointManager::Create({Root("d"), 1});
  EXPECT_EQ((*manager)->LatestValid(nullptr).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(CheckpointManager::Create({Root("e"), 0}).ok());
}

}  // namespace
}  // namespace strata
