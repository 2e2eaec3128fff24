// Job config files: a complete ZO config parses into the JobSpec it describes; --config
// overrides replace and add keys; YAML errors name file and line, unknown keys and bad enum
// values name the field.
#include "services/cli/job_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

constexpr char kZo[] = R"(# A ZO fine-tune.
name: zo-demo
labels: {team: nlp}
priority: 10
model:
  config_json: '{"model_type": "gpt2", "n_layer": 2}'
  init_seed: 7
data:
  train_paths: [/data/a.txt, /data/b.txt]
  format: DATA_FORMAT_TEXT
  batch_size: 8
  seq_len: 64
optimizer:
  zeroth_order:
    variant: ZO_VARIANT_SGD
    lr: 1e-4
    epsilon: 0.001
training:
  max_steps: 400
  log_interval: 20
resources: {cores_per_rank: 2, memory_bytes_per_rank: 4294967296}
checkpoint: {path: /shared/ckpt, interval_steps: 100}
max_restarts: 3
)";

TEST(JobConfigTest, ParsesACompleteZoConfig) {
  auto spec = ParseJobConfig(kZo, "zo.yaml", {});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name(), "zo-demo");
  EXPECT_EQ(spec->labels().at("team"), "nlp");
  EXPECT_EQ(spec->priority(), 10);
  EXPECT_EQ(spec->model().config_json(), R"({"model_type": "gpt2", "n_layer": 2})");
  EXPECT_EQ(spec->model().init_seed(), 7u);
  ASSERT_EQ(spec->data().train_paths_size(), 2);
  EXPECT_EQ(spec->data().format(), v1::DATA_FORMAT_TEXT);
  EXPECT_DOUBLE_EQ(spec->optimizer().zeroth_order().lr(), 1e-4);
  EXPECT_EQ(spec->training().max_steps(), 400);
  EXPECT_EQ(spec->resources().memory_bytes_per_rank(), int64_t{4} << 30);
  EXPECT_EQ(spec->checkpoint().interval_steps(), 100);
  EXPECT_TRUE(spec->has_max_restarts());
  EXPECT_EQ(spec->max_restarts(), 3);
}

TEST(JobConfigTest, OverridesReplaceAndAddKeys) {
  auto spec = ParseJobConfig(
      kZo, "zo.yaml", {"training.max_steps=50", "offload.param_tier=TIER_NVME", "name=renamed"});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->training().max_steps(), 50);
  EXPECT_EQ(spec->training().log_interval(), 20);  // Siblings kept.
  EXPECT_EQ(spec->offload().param_tier(), v1::TIER_NVME);
  EXPECT_EQ(spec->name(), "renamed");
  EXPECT_THAT(ParseJobConfig(kZo, "zo.yaml", {"novalue"}).status().message(),
              HasSubstr("expected dotted.key=value"));
}

TEST(JobConfigTest, ErrorsNameTheLineOrTheField) {
  auto bad_yaml = ParseJobConfig("name: x\ndata: [unclosed\n", "bad.yaml", {});
  ASSERT_FALSE(bad_yaml.ok());
  EXPECT_THAT(bad_yaml.status().message(), HasSubstr("bad.yaml:"));
  auto unknown = ParseJobConfig("name: x\ntraining: {max_stepz: 3}\n", "u.yaml", {});
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.status().message(), HasSubstr("max_stepz"));
  auto bad_enum = ParseJobConfig("offload: {param_tier: TIER_DISK}\n", "e.yaml", {});
  ASSERT_FALSE(bad_enum.ok());
  EXPECT_THAT(bad_enum.status().message(), HasSubstr("TIER_DISK"));
  auto dup = ParseJobConfig("name: a\nname: b\n", "d.yaml", {});
  EXPECT_THAT(dup.status().message(), HasSubstr("d.yaml:2: duplicate key \"name\""));
  EXPECT_THAT(ParseJobConfig("- a\n- b\n", "l.yaml", {}).status().message(),
              HasSubstr("top level must be a mapping"));
}

}  // namespace
}  // namespace strata
