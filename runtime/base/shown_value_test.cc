// Identifiers are shown; anything else (a line of someone's file) only by its length.
#include "runtime/base/shown_value.h"

#include "gtest/gtest.h"

namespace strata {
namespace {

TEST(ShownValueTest, IdentifiersAreQuotedEverythingElseIsALength) {
  EXPECT_EQ(ShownValue("gelu_new"), "\"gelu_new\"");
  EXPECT_EQ(ShownValue("model.layers.0.self_attn.q_proj.weight"),
            "\"model.layers.0.self_attn.q_proj.weight\"");
  EXPECT_EQ(ShownValue("root:x:0:0:root:/root:/bin/bash"), "(a string of 31 bytes)");
  EXPECT_EQ(ShownValue("hunter2 the password"), "(a string of 20 bytes)");
  EXPECT_EQ(ShownValue(""), "(a string of 0 bytes)");
  EXPECT_EQ(ShownValue(std::string(65, 'a')), "(a string of 65 bytes)");
}

}  // namespace
}  // namespace strata
