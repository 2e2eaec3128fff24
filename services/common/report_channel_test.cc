// The report channel over a real pipe: records written by WriteReport come back whole and in
// order however the bytes are split; a stream that is not records is refused by offset, and a
// record cut short stays pending instead of being half-read.
#include "services/common/report_channel.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

std::string Drain(int fd) {
  std::string all;
  char chunk[256];
  ssize_t n;
  while ((n = read(fd, chunk, sizeof(chunk))) > 0) all.append(chunk, n);
  return all;
}

TEST(ReportChannelTest, RecordsSurviveAnySplitOfThePipe) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  v1::RankReport progress;
  progress.mutable_progress()->set_step(20);
  progress.mutable_progress()->set_lr(1e-5);
  v1::RankReport step;
  step.mutable_zo_step()->set_step(21);
  step.mutable_zo_step()->set_seed(0xfeedfacecafebeefull);
  for (int i = 0; i < 100; ++i) step.mutable_zo_step()->add_projected_grads(i * 0.5);  // > 127 B
  v1::RankReport final;
  final.mutable_final()->set_error("spec.checkpoint.resume_from: /x is not a valid checkpoint");
  ASSERT_TRUE(WriteReport(fds[1], progress).ok());
  ASSERT_TRUE(WriteReport(fds[1], step).ok());
  ASSERT_TRUE(WriteReport(fds[1], final).ok());
  close(fds[1]);
  const std::string bytes = Drain(fds[0]);
  close(fds[0]);
  for (size_t piece : {size_t{1}, size_t{3}, size_t{64}, bytes.size()}) {
    ReportDecoder decoder;
    std::vector<v1::RankReport> got;
    for (size_t at = 0; at < bytes.size(); at += piece) {
      auto records = decoder.Feed(absl::string_view(bytes).substr(at, piece));
      ASSERT_TRUE(records.ok()) << records.status();
      got.insert(got.end(), records->begin(), records->end());
    }
    ASSERT_EQ(got.size(), 3u) << "pieces of " << piece;
    EXPECT_EQ(got[0].SerializeAsString(), progress.SerializeAsString());
    EXPECT_EQ(got[1].SerializeAsString(), step.SerializeAsString());
    EXPECT_EQ(got[2].SerializeAsString(), final.SerializeAsString());
    EXPECT_EQ(decoder.pending_bytes(), 0u);
  }
}

TEST(ReportChannelTest, WhatIsNotARecordIsRefusedByOffset) {
  v1::RankReport ok;
  ok.mutable_eval()->set_step(3);
  ok.mutable_eval()->set_loss(2.5);
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  ASSERT_TRUE(WriteReport(fds[1], ok).ok());
  close(fds[1]);
  const std::string record = Drain(fds[0]);
  close(fds[0]);
  {  // A length past the limit.
    ReportDecoder decoder;
    auto got = decoder.Feed(record + std::string("\xff\xff\xff\xff\x0f", 5));
    ASSERT_FALSE(got.ok());
    EXPECT_THAT(got.status().message(), HasSubstr(absl::StrCat("at byte ", record.size())));
  }
  {  // A varint that never ends.
    ReportDecoder decoder;
    EXPECT_FALSE(decoder.Feed(std::string(6, '\x80')).ok());
  }
  {  // Bytes that are not a RankReport.
    ReportDecoder decoder;
    auto got = decoder.Feed(std::string("\x03\xff\xff\xff", 4));
    ASSERT_FALSE(got.ok());
    EXPECT_THAT(got.status().message(), HasSubstr("does not parse"));
  }
  {  // A record cut short: nothing is returned, its bytes stay pending.
    ReportDecoder decoder;
    auto got = decoder.Feed(absl::string_view(record).substr(0, record.size() - 1));
    ASSERT_TRUE(got.ok());
    EXPECT_TRUE(got->empty());
    EXPECT_EQ(decoder.pending_bytes(), record.size() - 1);
  }
}

}  // namespace
}  // namespace strata
