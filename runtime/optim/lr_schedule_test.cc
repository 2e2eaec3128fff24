// LrSchedule against the formulas in lr_schedule.h, computed here independently per step.
#include "runtime/optim/lr_schedule.h"

#include <cmath>

#include "gtest/gtest.h"

namespace strata {
namespace {

TEST(LrScheduleTest, ConstantIsTheLearningRateAtEveryStep) {
  LrSchedule s{LrSchedule::Kind::kConstant, 1e-5, 0, 0, 100};
  ASSERT_TRUE(s.Validate().ok());
  for (int64_t k = 0; k < 120; ++k) EXPECT_EQ(s.At(k), 1e-5) << k;
}

TEST(LrScheduleTest, WarmUpThenLinearDecayToTheFloor) {
  LrSchedule s{LrSchedule::Kind::kLinear, 2.0, 4, 0.25, 20};
  EXPECT_DOUBLE_EQ(s.At(0), 0.5);
  EXPECT_DOUBLE_EQ(s.At(3), 2.0);
  EXPECT_DOUBLE_EQ(s.At(4), 2.0);              // p = 0
  EXPECT_DOUBLE_EQ(s.At(12), 0.5 + 1.5 * 0.5);  // p = 8/16
  EXPECT_DOUBLE_EQ(s.At(20), 0.5);
  EXPECT_DOUBLE_EQ(s.At(25), 0.5);              // Past the end: the floor.
}

TEST(LrScheduleTest, CosineDecayMatchesTheFormula) {
  LrSchedule s{LrSchedule::Kind::kCosine, 1.0, 10, 0.1, 110};
  EXPECT_DOUBLE_EQ(s.At(9), 1.0);
  EXPECT_DOUBLE_EQ(s.At(10), 1.0);
  EXPECT_NEAR(s.At(60), 0.55, 1e-12);
  EXPECT_NEAR(s.At(35), 0.1 + 0.45 * (1 + std::cos(M_PI * 0.25)), 1e-12);
  EXPECT_DOUBLE_EQ(s.At(110), 0.1);
}

TEST(LrScheduleTest, ValidateNamesTheBadMember) {
  EXPECT_NE((LrSchedule{LrSchedule::Kind::kLinear, -1, 0, 0, 10}).Validate().message().find("lr"),
            std::string::npos);
  EXPECT_NE((LrSchedule{LrSchedule::Kind::kLinear, 1, 0, 2, 10}).Validate().message().find(
                "min_lr_ratio"),
            std::string::npos);
  EXPECT_NE((LrSchedule{LrSchedule::Kind::kLinear, 1, -1, 0, 10}).Validate().message().find(
                "warmup_steps"),
            std::string::npos);
  EXPECT_TRUE((LrSchedule{LrSchedule::Kind::kConstant, 0, 0, 0, 10}).Validate().ok());
}

}  // namespace
}  // namespace strata
