// The v1 messages survive binary and JSON round trips unchanged, malformed bytes are refused,
// and the state enum keeps the wire numbers the API documents.
#include <string>

#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/strata/v1/federated_service.pb.h"
#include "proto/strata/v1/job.pb.h"
#include "proto/strata/v1/job_service.pb.h"
#include "proto/strata/v1/worker_service.pb.h"

namespace strata::v1 {
namespace {

using ::google::protobuf::util::MessageDifferencer;

JobSpec FullSpec() {
  JobSpec spec;
  spec.set_name("opt-zo-finetune");
  (*spec.mutable_labels())["team"] = "nlp";
  spec.mutable_model()->set_family(MODEL_FAMILY_LLAMA);
  spec.mutable_model()->set_checkpoint_path("/models/llama");
  spec.mutable_model()->set_storage_dtype(DTYPE_BF16);
  spec.mutable_data()->add_train_paths("/data/train.jsonl");
  spec.mutable_data()->set_format(DATA_FORMAT_JSONL);
  spec.mutable_data()->set_batch_size(16);
  spec.mutable_data()->set_seq_len(512);
  spec.mutable_data()->set_shuffle_seed(0xFFFFFFFFFFFFFFFFULL);
  ZerothOrderSpec* zo = spec.mutable_optimizer()->mutable_zeroth_order();
  zo->set_variant(ZO_VARIANT_SGD);
  zo->set_lr(1e-6);
  zo->set_epsilon(1e-3);
  zo->set_num_perturbations(4);
  zo->set_sparse_quantile(0.75);
  spec.mutable_optimizer()->mutable_schedule()->set_kind(LR_SCHEDULE_KIND_COSINE);
  spec.mutable_training()->set_max_steps(20000);
  spec.mutable_training()->set_seed(42);
  spec.mutable_zero()->set_stage(3);
  spec.mutable_offload()->set_param_tier(TIER_NVME);
  spec.mutable_offload()->add_nvme_paths("/nvme0");
  spec.mutable_offload()->set_memory_budget_bytes(int64_t{18} << 30);
  spec.mutable_resources()->set_ranks(4);
  spec.mutable_resources()->set_gpus_per_rank(1);
  spec.set_priority(10);
  spec.mutable_checkpoint()->set_path("/ckpt/job");
  spec.mutable_checkpoint()->set_interval_steps(500);
  spec.set_max_restarts(0);  // Explicit zero differs from unset.
  spec.mutable_federated()->set_num_candidate_seeds(4096);
  spec.mutable_federated()->mutable_round_timeout()->set_seconds(30);
  return spec;
}

TEST(ProtoRoundTripTest, JobSpecBinaryRoundTripIsExact) {
  const JobSpec spec = FullSpec();
  std::string bytes;
  ASSERT_TRUE(spec.SerializeToString(&bytes));
  JobSpec parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_TRUE(MessageDifferencer::Equals(spec, parsed)) << parsed.DebugString();
  EXPECT_TRUE(parsed.has_max_restarts());
  EXPECT_EQ(parsed.max_restarts(), 0);
  EXPECT_EQ(parsed.model().source_case(), ModelSpec::kCheckpointPath);
  EXPECT_EQ(parsed.optimizer().kind_case(), OptimizerSpec::kZerothOrder);
}

TEST(ProtoRoundTripTest, JobSpecJsonRoundTripIsExact) {
  const JobSpec spec = FullSpec();
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(spec, &json).ok());
  EXPECT_NE(json.find("\"memoryBudgetBytes\""), std::string::npos) << json;
  JobSpec parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed).ok());
  EXPECT_TRUE(MessageDifferencer::Equals(spec, parsed)) << json;
}

TEST(ProtoRoundTripTest, UnsetMaxRestartsIsDistinguishable) {
  JobSpec spec;
  std::string bytes;
  ASSERT_TRUE(spec.SerializeToString(&bytes));
  JobSpec parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_FALSE(parsed.has_max_restarts());
}

TEST(ProtoRoundTripTest, StepLogRecordKeepsExactFloatBits) {
  StepLogReport report;
  report.mutable_ref()->set_job_id("j1");
  ZoStepRecord* record = report.add_records();
  record->set_step(7);
  record->set_seed(0x9E3779B97F4A7C15ULL);
  const float g = -0.1234567f;  // An fp32 value widened to double must come back identical.
  record->add_projected_grads(static_cast<double>(g));
  record->set_lr(1e-7);
  std::string bytes;
  ASSERT_TRUE(report.SerializeToString(&bytes));
  StepLogReport parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.records(0).seed(), 0x9E3779B97F4A7C15ULL);
  EXPECT_EQ(static_cast<float>(parsed.records(0).projected_grads(0)), g);
}

TEST(ProtoRoundTripTest, FederatedMessagesRoundTrip) {
  PushResultRequest push;
  push.set_job_id("fed");
  push.set_client_id("phone-17");
  push.set_round(3);
  for (uint32_t k = 0; k < 200; ++k) {  // tau = 200 local steps, each with its own seed.
    push.add_seed_indices(4095 - 20 * k);
    push.add_scalars(2.5f / (k + 1));
  }
  push.set_num_samples(120);
  std::string bytes;
  ASSERT_TRUE(push.SerializeToString(&bytes));
  // Only seed indices and scalars travel, packed: 6 bytes a seed, under 2 KiB for 200.
  EXPECT_LT(bytes.size(), 1300u);
  PushResultRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_TRUE(MessageDifferencer::Equals(push, parsed));

  PullTaskResponse wait;
  wait.mutable_retry_after()->set_seconds(5);
  ASSERT_TRUE(wait.SerializeToString(&bytes));
  PullTaskResponse parsed_wait;
  ASSERT_TRUE(parsed_wait.ParseFromString(bytes));
  EXPECT_EQ(parsed_wait.status_case(), PullTaskResponse::kRetryAfter);
}

TEST(ProtoRoundTripTest, TruncatedBytesAreRejected) {
  std::string bytes;
  ASSERT_TRUE(FullSpec().SerializeToString(&bytes));
  JobSpec parsed;
  EXPECT_FALSE(parsed.ParseFromString(bytes.substr(0, bytes.size() - 3)));
}

TEST(ProtoRoundTripTest, JobStateWireNumbersAreStable) {
  EXPECT_EQ(JOB_STATE_QUEUED, 1);
  EXPECT_EQ(JOB_STATE_RUNNING, 3);
  EXPECT_EQ(JOB_STATE_STOPPING_KILLED, 8);
  EXPECT_EQ(JOB_STATE_ERROR, 11);
  EXPECT_EQ(JobState_Name(JOB_STATE_STOPPING_CANCELED), "JOB_STATE_STOPPING_CANCELED");
}

}  // namespace
}  // namespace strata::v1
