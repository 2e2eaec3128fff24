// ParseStepRecord and ParseTrainLine on strata-train's step records, progress, evaluation and
// other lines.
#include "services/worker/rank_runner.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

TEST(ParseStepRecordTest, ExactHexFloats) {
  v1::ZoStepRecord r;
  ASSERT_TRUE(ParseStepRecord(
      "zo-record 12 18446744073709551615 0x1.a36e2eb1c432dp-14 0x1.4p+1 0 -0x1.99999ap-4 0x0p+0",
      &r));
  EXPECT_EQ(r.step(), 12);
  EXPECT_EQ(r.seed(), 18446744073709551615ull);
  EXPECT_EQ(r.lr(), 0x1.a36e2eb1c432dp-14);
  EXPECT_EQ(r.loss(), 2.5);
  EXPECT_FALSE(r.skipped());
  ASSERT_EQ(r.projected_grads_size(), 2);
  EXPECT_EQ(static_cast<float>(r.projected_grads(0)), -0x1.99999ap-4f);
  EXPECT_FALSE(ParseStepRecord("zo-record 1 2 x 0x1p+0 0 0x1p+0", &r));
  EXPECT_FALSE(ParseStepRecord("step 1/2 | loss 3", &r));
}

TEST(ParseTrainLineTest, ProgressEvalAndOtherLines) {
  v1::JobProgress p;
  p.set_eval_loss(-1);
  EXPECT_TRUE(ParseTrainLine("step 20/200 | loss 3.2014 | g +1.2000e-01 | lr 1.00e-04 | 1234 tok/s",
                             256, &p));
  EXPECT_EQ(p.step(), 20);
  EXPECT_DOUBLE_EQ(p.loss(), 3.2014);
  EXPECT_DOUBLE_EQ(p.tokens_per_second(), 1234);
  EXPECT_EQ(p.tokens_total(), 20 * 256);
  EXPECT_TRUE(ParseTrainLine("step 100 | eval loss 2.5000", 256, &p));
  EXPECT_DOUBLE_EQ(p.eval_loss(), 2.5);
  EXPECT_EQ(p.step(), 20);  // An eval line does not move the step.
  EXPECT_TRUE(ParseTrainLine("final eval loss 2.3700 after 200 steps (900 tok/s)", 256, &p));
  EXPECT_DOUBLE_EQ(p.eval_loss(), 2.37);
  EXPECT_EQ(p.step(), 200);  // The last step, though it was not a logged one.
  EXPECT_EQ(p.tokens_total(), 200 * 256);
  EXPECT_TRUE(ParseTrainLine(
      "step 30/200 | loss 3.1 | g +1e-01 | lr 1e-04 | io r 123.4 MB w 61.7 MB | 99 tok/s", 256,
      &p));
  EXPECT_EQ(p.offload_read_bytes(), 123400000);
  EXPECT_EQ(p.offload_write_bytes(), 61700000);
  EXPECT_EQ(p.step(), 30);
  EXPECT_FALSE(ParseTrainLine("model: gpt2, 4 layers", 256, &p));
  EXPECT_FALSE(ParseTrainLine("step log: cut a torn last record (12 bytes)", 256, &p));
  EXPECT_EQ(p.step(), 30);
}

}  // namespace
}  // namespace strata
