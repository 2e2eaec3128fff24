// BuildRunConfig on ZO, offloaded ZO, FO and multi-rank specs: every spec value lands in the
// RunConfig the rank runs, defaults are resolved once, and placement problems name the field.
// NormalizeJobSpec's refusals: unknown enum numbers and fields that would otherwise be ignored.
#include "services/jobspec/run_config_builder.h"

#include <cmath>
#include <functional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/jobspec/job_spec.h"

namespace strata {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::JobSpec ZoSpec() {
  v1::JobSpec spec;
  spec.set_name("zo");
  spec.mutable_model()->set_config_json("{\"model_type\": \"gpt2\"}");
  spec.mutable_data()->add_train_paths("/d/a.txt");
  spec.mutable_data()->add_train_paths("/d/b.txt");
  spec.mutable_data()->set_batch_size(4);
  spec.mutable_data()->set_seq_len(64);
  spec.mutable_data()->set_format(v1::DATA_FORMAT_TEXT);
  v1::ZerothOrderSpec& zo = *spec.mutable_optimizer()->mutable_zeroth_order();
  zo.set_lr(1e-5);
  zo.set_variant(v1::ZO_VARIANT_SGD_SIGN);
  zo.set_estimator(v1::ZO_ESTIMATOR_ONE_SIDED);
  spec.mutable_training()->set_max_steps(200);
  spec.mutable_training()->set_seed(9);
  spec.mutable_checkpoint()->set_interval_steps(50);
  return spec;
}

RankSite Site(std::vector<std::string> nvme = {}) {
  RankSite site;
  site.job_id = "j-1";
  site.attempt = 2;
  site.job_dir = "/work/jobs/j-1";
  site.nvme_dirs = std::move(nvme);
  return site;
}

TEST(BuildRunConfigTest, ZeroOrderJobResolvesEveryDefaultOnce) {
  auto run = BuildRunConfig(ZoSpec(), Site());
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->job_id(), "j-1");
  EXPECT_EQ(run->attempt(), 2);
  EXPECT_EQ(run->world_size(), 1);
  EXPECT_EQ(run->model().config_json(), "{\"model_type\": \"gpt2\"}");
  EXPECT_EQ(run->model().init_seed(), 9u);    // training.seed
  EXPECT_EQ(run->data().shuffle_seed(), 9u);  // training.seed
  EXPECT_THAT(run->data().train_paths(), ElementsAre("/d/a.txt", "/d/b.txt"));
  EXPECT_EQ(run->data().eval_batches(), 8);
  EXPECT_EQ(run->data().eval_fraction(), 0.05);
  const v1::ZerothOrderSpec& zo = run->optimizer().zeroth_order();
  EXPECT_EQ(zo.lr(), 1e-5);
  EXPECT_EQ(zo.epsilon(), 1e-3);
  EXPECT_EQ(zo.num_perturbations(), 1);
  EXPECT_EQ(zo.variant(), v1::ZO_VARIANT_SGD_SIGN);
  EXPECT_EQ(zo.distribution(), v1::ZO_DISTRIBUTION_GAUSSIAN);
  // No schedule given: constant, as the proto says (not a trainer's warm-up + cosine).
  EXPECT_EQ(run->optimizer().schedule().kind(), v1::LR_SCHEDULE_KIND_CONSTANT);
  EXPECT_EQ(run->optimizer().schedule().warmup_steps(), 0);
  EXPECT_EQ(run->training().threads(), 1);  // resources.cores_per_rank
  EXPECT_EQ(run->training().log_interval(), 10);
  EXPECT_EQ(run->training().eval_interval(), 200);
  EXPECT_EQ(run->checkpoint().dir(), "/work/jobs/j-1/checkpoints");
  EXPECT_EQ(run->checkpoint().interval_steps(), 50);
  EXPECT_EQ(run->checkpoint().keep_last(), 3);
  EXPECT_EQ(run->offload().gpu(), -1);
  EXPECT_FALSE(run->has_rendezvous());
}

TEST(BuildRunConfigTest, OffloadedZoOnTheWorkersNvmeWithAGpu) {
  v1::JobSpec spec = ZoSpec();
  spec.mutable_offload()->set_param_tier(v1::TIER_NVME);
  spec.mutable_offload()->set_memory_budget_bytes(1 << 30);
  spec.mutable_offload()->set_storage_dtype(v1::DTYPE_BF16);
  spec.mutable_checkpoint()->set_path("/shared/ckpt");
  spec.mutable_resources()->set_gpus_per_rank(1);
  RankSite site = Site({"/nvme0/j-1-rank0", "/nvme1/j-1-rank0"});
  site.gpu_indices = {3};
  auto run = BuildRunConfig(spec, site);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_THAT(run->offload().dirs(), ElementsAre("/nvme0/j-1-rank0", "/nvme1/j-1-rank0"));
  EXPECT_EQ(run->offload().memory_budget_bytes(), 1 << 30);
  EXPECT_EQ(run->offload().storage_dtype(), v1::DTYPE_BF16);
  EXPECT_EQ(run->offload().prefetch_blocks(), 2);
  EXPECT_EQ(run->offload().gpu(), 3);
  EXPECT_EQ(run->checkpoint().dir(), "/shared/ckpt");
  // No NVMe paths on this worker: refused, naming the field.
  auto refused = BuildRunConfig(spec, Site());
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("spec.offload.param_tier"));
}

TEST(BuildRunConfigTest, FirstOrderJobCarriesItsScheduleAndAdamW) {
  v1::JobSpec spec = ZoSpec();
  spec.mutable_optimizer()->mutable_adamw()->set_lr(3e-3);
  spec.mutable_optimizer()->mutable_schedule()->set_kind(v1::LR_SCHEDULE_KIND_LINEAR);
  spec.mutable_optimizer()->mutable_schedule()->set_min_lr_ratio(0.1);
  spec.mutable_optimizer()->mutable_schedule()->set_warmup_steps(30);
  spec.mutable_checkpoint()->set_export_safetensors(true);
  auto run = BuildRunConfig(spec, Site());
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->optimizer().schedule().kind(), v1::LR_SCHEDULE_KIND_LINEAR);
  EXPECT_EQ(run->optimizer().schedule().min_lr_ratio(), 0.1);
  EXPECT_EQ(run->optimizer().adamw().beta1(), 0.9);
  EXPECT_EQ(run->optimizer().adamw().beta2(), 0.999);
  EXPECT_EQ(run->optimizer().adamw().epsilon(), 1e-8);
  EXPECT_EQ(run->checkpoint().export_dir(), "/work/jobs/j-1/checkpoints/export");
}

TEST(BuildRunConfigTest, MultiRankJobsMeetThroughTheCoordinatorOrASharedPath) {
  v1::JobSpec spec = ZoSpec();
  spec.mutable_optimizer()->mutable_adamw()->set_lr(1e-3);
  spec.mutable_resources()->set_ranks(2);
  RankSite site = Site();
  site.world_size = 2;
  site.rank = 1;
  site.rendezvous.set_coordinator("coord:7070");
  site.rendezvous.set_tls_ca("/etc/strata/ca.pem");
  site.rendezvous.set_prefix("j-1/3");
  auto run = BuildRunConfig(spec, site);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->rank(), 1);
  EXPECT_EQ(run->rendezvous().coordinator(), "coord:7070");
  EXPECT_EQ(run->rendezvous().tls_ca(), "/etc/strata/ca.pem");
  EXPECT_EQ(run->rendezvous().prefix(), "j-1/3");
  EXPECT_EQ(run->rendezvous().collective_timeout().seconds(), 60);
  site.rendezvous.clear_coordinator();
  EXPECT_THAT(BuildRunConfig(spec, site).status().message(), HasSubstr("spec.checkpoint.path"));
  spec.mutable_checkpoint()->set_path("/shared/ck");
  run = BuildRunConfig(spec, site);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->rendezvous().dir(), "/shared/ck/rendezvous");
  // A ZO job cannot be spread over ranks.
  v1::JobSpec zo = ZoSpec();
  zo.mutable_resources()->set_ranks(2);
  EXPECT_THAT(BuildRunConfig(zo, site).status().message(), HasSubstr("spec.resources.ranks"));
}

TEST(BuildRunConfigTest, FirstOrderOptimizerStateOnTheWorkersNvme) {
  v1::JobSpec spec = ZoSpec();
  spec.mutable_optimizer()->mutable_adamw()->set_lr(1e-3);
  spec.mutable_offload()->set_optimizer_tier(v1::TIER_NVME);
  auto run = BuildRunConfig(spec, Site({"/nvme0/j-1-rank0"}));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_THAT(run->offload().dirs(), ElementsAre("/nvme0/j-1-rank0"));
  EXPECT_THAT(BuildRunConfig(spec, Site()).status().message(),
              HasSubstr("spec.offload.optimizer_tier"));
}

TEST(BuildRunConfigTest, NormalizingTwiceChangesNothing) {
  auto once = NormalizeJobSpec(ZoSpec());
  ASSERT_TRUE(once.ok());
  auto twice = NormalizeJobSpec(*once);
  ASSERT_TRUE(twice.ok()) << twice.status();
  EXPECT_EQ(once->SerializeAsString(), twice->SerializeAsString());
}

TEST(NormalizeJobSpecTest, UnknownEnumNumbersAreRefusedByField) {
  struct Case {
    std::function<void(v1::JobSpec&)> set;
    const char* field;
  };
  const Case cases[] = {
      {[](v1::JobSpec& s) {
         s.mutable_optimizer()->mutable_zeroth_order()->set_variant(static_cast<v1::ZoVariant>(99));
       },
       "spec.optimizer.zeroth_order.variant: 99"},
      {[](v1::JobSpec& s) { s.mutable_data()->set_format(static_cast<v1::DataFormat>(77)); },
       "spec.data.format: 77"},
      {[](v1::JobSpec& s) { s.mutable_offload()->set_param_tier(static_cast<v1::Tier>(42)); },
       "spec.offload.param_tier: 42"},
      {[](v1::JobSpec& s) {
         s.mutable_optimizer()->mutable_schedule()->set_kind(static_cast<v1::LrScheduleKind>(9));
       },
       "spec.optimizer.schedule.kind: 9"},
      {[](v1::JobSpec& s) { s.mutable_model()->set_family(static_cast<v1::ModelFamily>(7)); },
       "spec.model.family: 7"},
  };
  for (const Case& c : cases) {
    v1::JobSpec spec = ZoSpec();
    c.set(spec);
    auto result = NormalizeJobSpec(spec);
    ASSERT_FALSE(result.ok()) << c.field;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(result.status().message(), HasSubstr(c.field));
  }
}

// LoRA: defaults (MeZO's r 8, alpha 16) resolved once; what it cannot do yet refused by name.
TEST(NormalizeJobSpecTest, LoraResolvesItsDefaultsAndRefusesWhatItCannotRun) {
  v1::JobSpec spec = ZoSpec();
  spec.mutable_peft()->mutable_lora();
  absl::StatusOr<v1::JobSpec> lora = NormalizeJobSpec(spec);
  ASSERT_TRUE(lora.ok()) << lora.status();
  EXPECT_EQ(lora->peft().lora().r(), 8);
  EXPECT_EQ(lora->peft().lora().alpha(), 16);
  v1::JobSpec first_order = spec;  // FO-LoRA: AdamW over the adapters.
  first_order.mutable_optimizer()->clear_zeroth_order();
  first_order.mutable_optimizer()->mutable_adamw()->set_lr(1e-3);
  EXPECT_TRUE(NormalizeJobSpec(first_order).ok()) << NormalizeJobSpec(first_order).status();
  v1::JobSpec prefix = ZoSpec();  // Prefix tuning: MeZO's 5 virtual tokens by default.
  prefix.mutable_peft()->mutable_prefix();
  absl::StatusOr<v1::JobSpec> with_prefix = NormalizeJobSpec(prefix);
  ASSERT_TRUE(with_prefix.ok()) << with_prefix.status();
  EXPECT_EQ(with_prefix->peft().prefix().num_tokens(), 5);
  v1::JobSpec both = spec;
  both.mutable_peft()->mutable_prefix();
  EXPECT_THAT(NormalizeJobSpec(both).status().message(), HasSubstr("spec.peft: set one of"));
  v1::JobSpec activations_offloaded = prefix;
  activations_offloaded.mutable_peft()->mutable_prefix()->set_init_from_activations(true);
  activations_offloaded.mutable_offload()->set_param_tier(v1::TIER_NVME);
  EXPECT_THAT(NormalizeJobSpec(activations_offloaded).status().message(),
              HasSubstr("spec.peft.prefix.init_from_activations: not supported yet"));
  v1::JobSpec activations_ranks = prefix;  // Ranks on other CPUs would start from other bits.
  activations_ranks.mutable_peft()->mutable_prefix()->set_init_from_activations(true);
  activations_ranks.mutable_optimizer()->clear_zeroth_order();
  activations_ranks.mutable_optimizer()->mutable_adamw()->set_lr(1e-3);
  activations_ranks.mutable_resources()->set_ranks(2);
  EXPECT_THAT(NormalizeJobSpec(activations_ranks).status().message(),
              HasSubstr("spec.peft.prefix.init_from_activations: not supported yet"));
  v1::JobSpec offloaded = spec;  // ZO-LoRA over a base streamed from NVMe.
  offloaded.mutable_offload()->set_param_tier(v1::TIER_NVME);
  EXPECT_TRUE(NormalizeJobSpec(offloaded).ok()) << NormalizeJobSpec(offloaded).status();
  struct Case {
    std::function<void(v1::JobSpec&)> set;
    const char* field;
  };
  const Case cases[] = {
      {[](v1::JobSpec& s) { s.mutable_peft()->mutable_lora()->set_r(-1); }, "spec.peft.lora.r:"},
      {[](v1::JobSpec& s) { s.mutable_peft()->mutable_lora()->set_alpha(-2); },
       "spec.peft.lora.alpha:"},
      {[](v1::JobSpec& s) {
         s.mutable_peft()->mutable_lora()->add_target_modules("all-linear");
         s.mutable_peft()->mutable_lora()->add_target_modules("q_proj");
       },
       "spec.peft.lora.target_modules:"},
      {[](v1::JobSpec& s) {
         s.mutable_offload()->set_param_tier(v1::TIER_NVME);
         s.mutable_resources()->set_gpus_per_rank(1);
       },
       "spec.peft.lora: not supported yet (LoRA on a GPU"},
      {[](v1::JobSpec& s) {
         s.mutable_optimizer()->mutable_zeroth_order()->set_variant(v1::ZO_VARIANT_ADAM);
       },
       "spec.peft.lora: not supported yet"},
      {[](v1::JobSpec& s) {
         s.mutable_optimizer()->clear_zeroth_order();
         s.mutable_optimizer()->mutable_adamw()->set_lr(1e-3);
         s.mutable_zero()->set_stage(1);
       },
       "spec.peft.lora: not supported yet (ZeRO stages 1-3"},
      {[](v1::JobSpec& s) {
         s.mutable_optimizer()->clear_zeroth_order();
         s.mutable_optimizer()->mutable_adamw()->set_lr(1e-3);
         s.mutable_offload()->set_optimizer_tier(v1::TIER_NVME);
       },
       "spec.peft.lora: not supported yet (adapters' AdamW state on NVMe"},
  };
  for (const Case& c : cases) {
    v1::JobSpec changed = spec;
    c.set(changed);
    absl::StatusOr<v1::JobSpec> result = NormalizeJobSpec(changed);
    ASSERT_FALSE(result.ok()) << c.field;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(result.status().message(), HasSubstr(c.field));
  }
}

TEST(NormalizeJobSpecTest, FederatedJobsRefuseWhatTheirRoundsIgnore) {
  v1::JobSpec spec;
  spec.set_name("fed");
  spec.mutable_model()->set_config_json(R"({"vocab_size": 257})");
  spec.mutable_data()->set_batch_size(2);
  spec.mutable_data()->set_seq_len(8);
  spec.mutable_optimizer()->mutable_zeroth_order()->set_lr(0.5);
  spec.mutable_federated()->set_num_rounds(3);
  spec.mutable_federated()->set_local_steps(4);
  auto ok = NormalizeJobSpec(spec);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->training().max_steps(), 12);
  // The clip a hostile client's scalar is held to, derived from the job when unset.
  EXPECT_DOUBLE_EQ(ok->federated().scalar_clip(), std::log(257.0) / 1e-3);
  v1::JobSpec no_vocab = spec;
  no_vocab.mutable_model()->set_config_json("{}");
  EXPECT_THAT(NormalizeJobSpec(no_vocab).status().message(),
              HasSubstr("spec.federated.scalar_clip: 0 derives the bound"));
  spec.mutable_optimizer()->mutable_schedule()->set_kind(v1::LR_SCHEDULE_KIND_COSINE);
  EXPECT_THAT(NormalizeJobSpec(spec).status().message(), HasSubstr("spec.optimizer.schedule.kind"));
  spec.mutable_optimizer()->clear_schedule();
  spec.mutable_data()->add_train_paths("/etc/passwd");
  EXPECT_THAT(NormalizeJobSpec(spec).status().message(), HasSubstr("spec.data.train_paths"));
}

}  // namespace
}  // namespace strata
