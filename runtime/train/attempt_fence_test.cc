// AttemptFence on a real directory: the first claim writes ATTEMPT, the same attempt may claim
// again (another rank), a newer claim makes the older fence's next check fail, an older claim
// is refused, another job takes the directory over, a damaged ATTEMPT file is an error naming
// it, and a claim waits for a write of the older attempt that is under way.
#include "runtime/train/attempt_fence.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

TEST(AttemptFenceTest, ANewerAttemptStopsTheOlderOnesWrites) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/fenced/ckpt";
  absl::StatusOr<AttemptFence> first = AttemptFence::Claim(dir, "j-1", 1);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->Check().ok());
  absl::StatusOr<AttemptFence> other_rank = AttemptFence::Claim(dir, "j-1", 1);
  ASSERT_TRUE(other_rank.ok()) << other_rank.status();
  EXPECT_TRUE(first->Check().ok());

  absl::StatusOr<AttemptFence> second = AttemptFence::Claim(dir, "j-1", 2);
  ASSERT_TRUE(second.ok()) << second.status();
  const absl::Status stale = first->Check().status();
  EXPECT_EQ(stale.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(stale.message(), HasSubstr("attempt 2 of the job now writes here"));
  EXPECT_FALSE(other_rank->Check().ok());
  EXPECT_TRUE(second->Check().ok());
  // A late start of the old attempt does not take the directory back.
  EXPECT_EQ(AttemptFence::Claim(dir, "j-1", 1).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(second->Check().ok());

  // Another job pointed at the same directory takes it over.
  absl::StatusOr<AttemptFence> other_job = AttemptFence::Claim(dir, "j-2", 1);
  ASSERT_TRUE(other_job.ok()) << other_job.status();
  EXPECT_THAT(second->Check().status().message(), HasSubstr("job j-2 now writes here"));

  std::ofstream(dir + "/replacement") << "garbage\n";  // Replaced as a claim replaces it.
  ASSERT_EQ(std::rename((dir + "/replacement").c_str(), (dir + "/ATTEMPT").c_str()), 0);
  const absl::Status damaged = other_job->Check().status();
  EXPECT_EQ(damaged.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(damaged.message(), HasSubstr("/ATTEMPT does not hold \"JOB ATTEMPT\""));
  EXPECT_FALSE(AttemptFence::Claim(dir, "j-1", 0).ok());
  EXPECT_FALSE(AttemptFence::Claim(dir, "two words", 1).ok());
}

TEST(AttemptFenceTest, AClaimWaitsForAWriteUnderWay) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/held/ckpt";
  absl::StatusOr<AttemptFence> old_attempt = AttemptFence::Claim(dir, "j-1", 1);
  ASSERT_TRUE(old_attempt.ok()) << old_attempt.status();
  std::atomic<bool> claimed{false};
  std::thread new_attempt;
  {
    absl::StatusOr<AttemptFence::Hold> writing = old_attempt->Check();
    ASSERT_TRUE(writing.ok()) << writing.status();
    new_attempt = std::thread([&] {
      EXPECT_TRUE(AttemptFence::Claim(dir, "j-1", 2).ok());
      claimed = true;
    });
    absl::SleepFor(absl::Milliseconds(200));
    EXPECT_FALSE(claimed.load()) << "the claim did not wait for the write under way";
  }  // The write ends.
  new_attempt.join();
  EXPECT_TRUE(claimed.load());
  EXPECT_EQ(old_attempt->Check().status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace strata
