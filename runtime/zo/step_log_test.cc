#include "runtime/zo/step_log.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata::zo {
namespace {

using ::testing::HasSubstr;

std::string Path(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return std::string(tmp ? tmp : "/tmp") + "/" + name;
}

ZoStepRecord Record(int64_t step) {
  return ZoStepRecord{
      step, 1000 + static_cast<uint64_t>(step), {0.5f * step, -1.25f}, 1e-3 * step, step % 3 == 0,
      2.5f};
}

TEST(StepLogTest, AppendsReopensAndReadsBack) {
  const std::string path = Path("a.log");
  {
    auto w = StepLogWriter::Open(path, 2);
    ASSERT_TRUE(w.ok()) << w.status();
    for (int s = 1; s <= 3; ++s) ASSERT_TRUE((*w)->Append(Record(s), s == 3).ok());
  }
  auto w = StepLogWriter::Open(path, 2);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->existing().size(), 3u);
  ASSERT_TRUE((*w)->Append(Record(4), true).ok());
  auto contents = ReadStepLog(path, 2);
  ASSERT_TRUE(contents.ok()) << contents.status();
  ASSERT_EQ(contents->records.size(), 4u);
  const ZoStepRecord& r = contents->records[2];
  EXPECT_EQ(r.step, 3);
  EXPECT_EQ(r.seed, 1003u);
  EXPECT_EQ(r.scalars, (std::vector<float>{1.5f, -1.25f}));
  EXPECT_EQ(r.lr, 3e-3);
  EXPECT_TRUE(r.skipped);
  EXPECT_EQ(contents->torn_tail_bytes, 0);
}

TEST(StepLogTest, TornTailIsCutAndCorruptionIsRefusedWithTheOffset) {
  const std::string path = Path("b.log");
  {
    auto w = StepLogWriter::Open(path, 2);
    for (int s = 1; s <= 3; ++s) ASSERT_TRUE((*w)->Append(Record(s), false).ok());
  }
  // A crash in the middle of appending record 4.
  { std::ofstream(path, std::ios::binary | std::ios::app) << std::string(17, 'x'); }
  auto contents = ReadStepLog(path, 2);
  ASSERT_TRUE(contents.ok());
  EXPECT_EQ(contents->records.size(), 3u);
  EXPECT_EQ(contents->torn_tail_bytes, 17);
  {
    auto w = StepLogWriter::Open(path, 2);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ((*w)->torn_tail_bytes(), 17);
    ASSERT_TRUE((*w)->Append(Record(4), true).ok());
  }
  EXPECT_EQ(ReadStepLog(path, 2)->records.size(), 4u);
  // Flip a byte inside record 2.
  {
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(24 + 44 + 10);  // Header 24 bytes, records 44 bytes for q = 2.
    f.put('\x7f');
  }
  absl::Status status = ReadStepLog(path, 2).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("offset 68"));
  EXPECT_FALSE(StepLogWriter::Open(path, 2).ok());
  // Wrong q or not a log at all.
  EXPECT_THAT(ReadStepLog(Path("a.log"), 3).status().message(), HasSubstr("2 scalars per step"));
  { std::ofstream(Path("c.log")) << "hello"; }
  EXPECT_THAT(ReadStepLog(Path("c.log"), 2).status().message(), HasSubstr("bad header"));
}

TEST(Crc32Test, KnownValue) { EXPECT_EQ(Crc32("123456789", 9), 0xCBF43926u); }

}  // namespace
}  // namespace strata::zo
