// Every bound of spec_limits.h refuses the oversized spec by field, and a spec at the bounds
// passes.
#include "services/jobspec/spec_limits.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

std::string Refusal(const v1::JobSpec& spec) {
  return std::string(CheckSpecLimits(spec).message());
}

TEST(SpecLimitsTest, RefusesEachOversizedPartByName) {
  v1::JobSpec at_bounds;
  at_bounds.mutable_model()->set_config_json(std::string(kMaxConfigJsonBytes, ' '));
  for (int i = 0; i < kMaxLabels; ++i) {
    (*at_bounds.mutable_labels())[absl::StrCat("k", i)] = std::string(kMaxLabelValueBytes, 'v');
  }
  at_bounds.mutable_training()->set_max_steps(kMaxSteps);
  EXPECT_TRUE(CheckSpecLimits(at_bounds).ok()) << CheckSpecLimits(at_bounds);

  v1::JobSpec spec = at_bounds;
  (*spec.mutable_labels())["one-more"] = "x";
  EXPECT_THAT(Refusal(spec), HasSubstr("spec.labels: 33 labels; at most 32"));
  spec = at_bounds;
  (*spec.mutable_labels())["k0"] = std::string(4 << 20, 'x');  // The multi-MB label.
  EXPECT_THAT(Refusal(spec), HasSubstr("bytes serialized; at most 524288"));
  spec = at_bounds;
  (*spec.mutable_labels())["k0"] = std::string(kMaxLabelValueBytes + 1, 'x');
  EXPECT_THAT(Refusal(spec), HasSubstr("spec.labels[k0]: at most 256 bytes"));
  spec = at_bounds;
  spec.mutable_labels()->erase("k0");
  (*spec.mutable_labels())[std::string(64, 'k')] = "v";
  EXPECT_THAT(Refusal(spec), HasSubstr("spec.labels: a key must be 1-63 bytes"));
  spec = at_bounds;
  spec.mutable_model()->set_config_json(std::string(kMaxConfigJsonBytes + 1, ' '));
  EXPECT_THAT(Refusal(spec), HasSubstr("spec.model.config_json: at most"));
  spec = at_bounds;
  spec.mutable_training()->set_max_steps(kMaxSteps + 1);
  EXPECT_THAT(Refusal(spec), HasSubstr("spec.training.max_steps: at most"));
  spec = at_bounds;
  spec.mutable_resources()->set_cores_per_rank(1'000'000);
  EXPECT_THAT(Refusal(spec), HasSubstr("spec.resources.cores_per_rank: at most 4096"));
  spec = at_bounds;
  for (int i = 0; i <= kMaxDataPaths; ++i) spec.mutable_data()->add_train_paths("x");
  EXPECT_THAT(Refusal(spec), HasSubstr("spec.data.train_paths: at most 256 paths"));
}

}  // namespace
}  // namespace strata
