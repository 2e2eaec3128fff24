// Every field a user can set in a JobSpec is honoured or refused. The test walks the JobSpec
// descriptor (nested strata.v1 messages included) and requires each leaf field to appear in the
// table below, which says how it is honoured and shows it: setting the sample value changes the
// RunConfig the rank runs (or, for fields the coordinator or the federated rounds act on, the
// normalized spec they read), or the spec is refused with INVALID_ARGUMENT naming the field.
// A field added to the proto without a row here fails FieldsAreAllClassified.
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "services/jobspec/job_spec.h"
#include "services/jobspec/run_config_builder.h"

namespace strata {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

enum class Base { kZo, kFo, kZoOffload, kFo3, kFederated, kZoTask };
enum class Outcome {
  kRunConfig,    // Honoured by the rank: the RunConfig changes.
  kCoordinator,  // Honoured by the coordinator (scheduling, storage, restarts): the stored spec.
  kRounds,       // Honoured by the federated round manager: the stored spec it reads.
  kRefused,      // Refused with INVALID_ARGUMENT naming the field.
};

struct Row {
  Base base;
  Outcome outcome;
  const char* how;
  std::function<void(v1::JobSpec&)> set;
};

v1::JobSpec BaseSpec(Base base) {
  v1::JobSpec s;
  s.set_name("coverage");
  if (base == Base::kFederated) {
    s.mutable_model()->set_config_json(R"({"vocab_size": 257})");
    s.mutable_data()->set_batch_size(2);
    s.mutable_data()->set_seq_len(8);
    s.mutable_optimizer()->mutable_zeroth_order()->set_lr(0.5);
    s.mutable_federated()->set_num_rounds(3);
    return s;
  }
  s.mutable_model()->set_config_path("/models/config.json");
  s.mutable_data()->add_train_paths("/data/train.txt");
  s.mutable_data()->set_batch_size(4);
  s.mutable_data()->set_seq_len(32);
  s.mutable_training()->set_max_steps(100);
  if (base == Base::kZo || base == Base::kZoOffload || base == Base::kZoTask) {
    s.mutable_optimizer()->mutable_zeroth_order()->set_lr(1e-5);
  } else {
    s.mutable_optimizer()->mutable_adamw()->set_lr(1e-3);
  }
  if (base == Base::kZoOffload) s.mutable_offload()->set_param_tier(v1::TIER_NVME);
  if (base == Base::kFo3) s.mutable_zero()->set_stage(3);
  if (base == Base::kZoTask) {
    s.mutable_data()->clear_train_paths();
    v1::TaskSpec* task = s.mutable_task();
    task->set_kind(v1::TASK_KIND_CLASSIFICATION);
    task->set_train_path("/data/task.jsonl");
    task->set_template_("{sentence} It was");
    v1::TaskLabel* label = task->add_labels();
    label->set_value("0");
    label->set_text("bad");
    label = task->add_labels();
    label->set_value("1");
    label->set_text("good");
  }
  return s;
}

#define SET(body) [](v1::JobSpec& s) { body; }

const std::map<std::string, Row>& Table() {
  static const auto* table = new std::map<std::string, Row>{
      // Job.
      {"name", {Base::kZo, Outcome::kCoordinator, "stored and listed", SET(s.set_name("other"))}},
      {"labels",
       {Base::kZo, Outcome::kCoordinator, "stored, listed and filtered on",
        SET((*s.mutable_labels())["team"] = "a")}},
      {"priority", {Base::kZo, Outcome::kCoordinator, "scheduler order", SET(s.set_priority(7))}},
      {"max_restarts",
       {Base::kZo, Outcome::kCoordinator, "group restarts before ERROR",
        SET(s.set_max_restarts(1))}},
      // Model.
      {"model.family",
       {Base::kZo, Outcome::kRunConfig, "checked against config.json's model_type by the trainer",
        SET(s.mutable_model()->set_family(v1::MODEL_FAMILY_LLAMA))}},
      {"model.checkpoint_path",
       {Base::kZo, Outcome::kRunConfig, "weights loaded from it",
        SET(s.mutable_model()->set_checkpoint_path("/models/ckpt"))}},
      {"model.config_path",
       {Base::kZo, Outcome::kRunConfig, "config read from it",
        SET(s.mutable_model()->set_config_path("/models/other.json"))}},
      {"model.config_json",
       {Base::kZo, Outcome::kRunConfig, "config parsed from it",
        SET(s.mutable_model()->set_config_json("{}"))}},
      {"model.storage_dtype",
       {Base::kZo, Outcome::kRefused, "only DTYPE_F32",
        SET(s.mutable_model()->set_storage_dtype(v1::DTYPE_BF16))}},
      {"model.init_seed",
       {Base::kZo, Outcome::kRunConfig, "seeds the random initialization",
        SET(s.mutable_model()->set_init_seed(77))}},
      // Data.
      {"data.train_paths",
       {Base::kZo, Outcome::kRunConfig, "files read",
        SET(s.mutable_data()->add_train_paths("/data/more.txt"))}},
      {"data.eval_paths",
       {Base::kZo, Outcome::kRefused, "not supported yet (data.eval_fraction)",
        SET(s.mutable_data()->add_eval_paths("/data/eval.txt"))}},
      {"data.format",
       {Base::kZo, Outcome::kRunConfig, "corpus reader",
        SET(s.mutable_data()->set_format(v1::DATA_FORMAT_TEXT))}},
      {"data.tokenizer_path",
       {Base::kZo, Outcome::kRunConfig, "tokenizer loaded",
        SET(s.mutable_data()->set_tokenizer_path("/models/tokenizer.json"))}},
      {"data.text_field",
       {Base::kZo, Outcome::kRunConfig, "JSONL field read",
        SET(s.mutable_data()->set_text_field("body"))}},
      {"data.batch_size",
       {Base::kZo, Outcome::kRunConfig, "sequences per step",
        SET(s.mutable_data()->set_batch_size(8))}},
      {"data.seq_len",
       {Base::kZo, Outcome::kRunConfig, "tokens per sequence",
        SET(s.mutable_data()->set_seq_len(64))}},
      {"data.shuffle_seed",
       {Base::kZo, Outcome::kRunConfig, "batch order", SET(s.mutable_data()->set_shuffle_seed(5))}},
      {"data.eval_batches",
       {Base::kZo, Outcome::kRunConfig, "batches per evaluation",
        SET(s.mutable_data()->set_eval_batches(3))}},
      {"data.eval_fraction",
       {Base::kZo, Outcome::kRunConfig, "held-out share",
        SET(s.mutable_data()->set_eval_fraction(0.2))}},
      // Zeroth-order optimizer.
      {"optimizer.zeroth_order.variant",
       {Base::kZo, Outcome::kRunConfig, "update rule",
        SET(s.mutable_optimizer()->mutable_zeroth_order()->set_variant(v1::ZO_VARIANT_SGD_SIGN))}},
      {"optimizer.zeroth_order.estimator",
       {Base::kZo, Outcome::kRunConfig, "one- or two-sided",
        SET(s.mutable_optimizer()->mutable_zeroth_order()->set_estimator(
            v1::ZO_ESTIMATOR_ONE_SIDED))}},
      {"optimizer.zeroth_order.distribution",
       {Base::kZo, Outcome::kRunConfig, "noise",
        SET(s.mutable_optimizer()->mutable_zeroth_order()->set_distribution(
            v1::ZO_DISTRIBUTION_RADEMACHER))}},
      {"optimizer.zeroth_order.lr",
       {Base::kZo, Outcome::kRunConfig, "schedule's peak",
        SET(s.mutable_optimizer()->mutable_zeroth_order()->set_lr(2e-5))}},
      {"optimizer.zeroth_order.epsilon",
       {Base::kZo, Outcome::kRunConfig, "perturbation scale",
        SET(s.mutable_optimizer()->mutable_zeroth_order()->set_epsilon(1e-2))}},
      {"optimizer.zeroth_order.num_perturbations",
       {Base::kZo, Outcome::kRunConfig, "n-SPSA q",
        SET(s.mutable_optimizer()->mutable_zeroth_order()->set_num_perturbations(4))}},
      {"optimizer.zeroth_order.weight_decay",
       {Base::kZo, Outcome::kRunConfig, "decoupled decay",
        SET(s.mutable_optimizer()->mutable_zeroth_order()->set_weight_decay(0.01))}},
      {"optimizer.zeroth_order.momentum",
       {Base::kZo, Outcome::kRefused, "honoured with ZO_VARIANT_SGD_MOMENTUM; refused otherwise",
        SET(s.mutable_optimizer()->mutable_zeroth_order()->set_momentum(0.5))}},
      {"optimizer.zeroth_order.beta1",
       {Base::kZo, Outcome::kRefused, "honoured with ZO_VARIANT_ADAM; refused otherwise",
        SET(s.mutable_optimizer()->mutable_zeroth_order()->set_beta1(0.8))}},
      {"optimizer.zeroth_order.beta2",
       {Base::kZo, Outcome::kRefused, "honoured with ZO_VARIANT_ADAM; refused otherwise",
        SET(s.mutable_optimizer()->mutable_zeroth_order()->set_beta2(0.99))}},
      {"optimizer.zeroth_order.adam_epsilon",
       {Base::kZo, Outcome::kRefused, "honoured with ZO_VARIANT_ADAM; refused otherwise",
        SET(s.mutable_optimizer()->mutable_zeroth_order()->set_adam_epsilon(1e-6))}},
      {"optimizer.zeroth_order.sparse_quantile",
       {Base::kZo, Outcome::kRunConfig, "Sparse-MeZO mask",
        SET(s.mutable_optimizer()->mutable_zeroth_order()->set_sparse_quantile(0.75))}},
      {"optimizer.zeroth_order.scalar_clip",
       {Base::kZo, Outcome::kRunConfig, "projected-gradient clip",
        SET(s.mutable_optimizer()->mutable_zeroth_order()->set_scalar_clip(10))}},
      {"optimizer.zeroth_order.keep_nonfinite_steps",
       {Base::kZo, Outcome::kRunConfig, "non-finite steps applied",
        SET(s.mutable_optimizer()->mutable_zeroth_order()->set_keep_nonfinite_steps(true))}},
      // AdamW.
      {"optimizer.adamw.lr",
       {Base::kFo, Outcome::kRunConfig, "schedule's peak",
        SET(s.mutable_optimizer()->mutable_adamw()->set_lr(2e-3))}},
      {"optimizer.adamw.beta1",
       {Base::kFo, Outcome::kRunConfig, "first moment",
        SET(s.mutable_optimizer()->mutable_adamw()->set_beta1(0.8))}},
      {"optimizer.adamw.beta2",
       {Base::kFo, Outcome::kRunConfig, "second moment",
        SET(s.mutable_optimizer()->mutable_adamw()->set_beta2(0.95))}},
      {"optimizer.adamw.epsilon",
       {Base::kFo, Outcome::kRunConfig, "denominator epsilon",
        SET(s.mutable_optimizer()->mutable_adamw()->set_epsilon(1e-6))}},
      {"optimizer.adamw.weight_decay",
       {Base::kFo, Outcome::kRunConfig, "decoupled decay",
        SET(s.mutable_optimizer()->mutable_adamw()->set_weight_decay(0.1))}},
      {"optimizer.adamw.grad_clip_norm",
       {Base::kFo, Outcome::kRunConfig, "global-norm clip",
        SET(s.mutable_optimizer()->mutable_adamw()->set_grad_clip_norm(1.0))}},
      {"optimizer.adamw.bf16_compute_copy",
       {Base::kFo, Outcome::kRefused, "zero.compute_dtype says it",
        SET(s.mutable_optimizer()->mutable_adamw()->set_bf16_compute_copy(true))}},
      // Schedule.
      {"optimizer.schedule.kind",
       {Base::kZo, Outcome::kRunConfig, "lr curve",
        SET(s.mutable_optimizer()->mutable_schedule()->set_kind(v1::LR_SCHEDULE_KIND_COSINE))}},
      {"optimizer.schedule.warmup_steps",
       {Base::kFo, Outcome::kRunConfig, "warm-up length",
        SET(s.mutable_optimizer()->mutable_schedule()->set_warmup_steps(10))}},
      {"optimizer.schedule.min_lr_ratio",
       {Base::kZo, Outcome::kRefused, "honoured by LINEAR and COSINE; refused with CONSTANT",
        SET(s.mutable_optimizer()->mutable_schedule()->set_min_lr_ratio(0.1))}},
      // Training.
      {"training.max_steps",
       {Base::kZo, Outcome::kRunConfig, "steps run", SET(s.mutable_training()->set_max_steps(50))}},
      {"training.eval_interval",
       {Base::kZo, Outcome::kRunConfig, "evaluation cadence",
        SET(s.mutable_training()->set_eval_interval(10))}},
      {"training.log_interval",
       {Base::kZo, Outcome::kRunConfig, "progress cadence",
        SET(s.mutable_training()->set_log_interval(5))}},
      {"training.seed",
       {Base::kZo, Outcome::kRunConfig, "ZO seeds (and init/shuffle defaults)",
        SET(s.mutable_training()->set_seed(3))}},
      {"training.threads",
       {Base::kZo, Outcome::kRunConfig, "compute threads",
        SET(s.mutable_training()->set_threads(2))}},
      // PEFT.
      {"peft.lora.r",
       {Base::kZo, Outcome::kRunConfig, "LoRA rank",
        SET(s.mutable_peft()->mutable_lora()->set_r(4))}},
      {"peft.lora.alpha",
       {Base::kZo, Outcome::kRunConfig, "LoRA scale alpha / r",
        SET(s.mutable_peft()->mutable_lora()->set_alpha(32))}},
      {"peft.lora.target_modules",
       {Base::kZo, Outcome::kRunConfig, "the adapted layers",
        SET(s.mutable_peft()->mutable_lora()->add_target_modules("o_proj"))}},
      {"peft.prefix.num_tokens",
       {Base::kZo, Outcome::kRunConfig, "prefix length in virtual tokens",
        SET(s.mutable_peft()->mutable_prefix()->set_num_tokens(3))}},
      {"peft.prefix.init_from_activations",
       {Base::kZo, Outcome::kRunConfig, "the prefix's initialization",
        SET(s.mutable_peft()->mutable_prefix()->set_init_from_activations(true))}},
      // ZeRO.
      {"zero.stage",
       {Base::kFo, Outcome::kRunConfig, "stage family", SET(s.mutable_zero()->set_stage(1))}},
      {"zero.prefetch_blocks",
       {Base::kFo3, Outcome::kRefused,
        "stage 3 gathers one block ahead: 1 accepted, others refused",
        SET(s.mutable_zero()->set_prefetch_blocks(2))}},
      {"zero.compute_dtype",
       {Base::kFo3, Outcome::kRunConfig, "bf16 compute copy",
        SET(s.mutable_zero()->set_compute_dtype(v1::DTYPE_BF16))}},
      // Offload.
      {"offload.param_tier",
       {Base::kZo, Outcome::kRunConfig, "where weights rest",
        SET(s.mutable_offload()->set_param_tier(v1::TIER_CPU))}},
      {"offload.optimizer_tier",
       {Base::kFo, Outcome::kRunConfig, "where AdamW state rests",
        SET(s.mutable_offload()->set_optimizer_tier(v1::TIER_NVME))}},
      {"offload.nvme_paths",
       {Base::kZoOffload, Outcome::kRefused, "not supported yet: the worker's --nvme_paths",
        SET(s.mutable_offload()->add_nvme_paths("/elsewhere"))}},
      {"offload.memory_budget_bytes",
       {Base::kZoOffload, Outcome::kRunConfig, "working-set bound",
        SET(s.mutable_offload()->set_memory_budget_bytes(1 << 30))}},
      {"offload.storage_dtype",
       {Base::kZoOffload, Outcome::kRunConfig, "bf16 blocks",
        SET(s.mutable_offload()->set_storage_dtype(v1::DTYPE_BF16))}},
      {"offload.queue_depth",
       {Base::kZoOffload, Outcome::kRefused, "not supported yet",
        SET(s.mutable_offload()->set_queue_depth(64))}},
      {"offload.io_block_bytes",
       {Base::kZoOffload, Outcome::kRefused, "not supported yet",
        SET(s.mutable_offload()->set_io_block_bytes(1 << 20))}},
      {"offload.prefetch_blocks",
       {Base::kZoOffload, Outcome::kRunConfig, "read-ahead",
        SET(s.mutable_offload()->set_prefetch_blocks(4))}},
      // Resources.
      {"resources.ranks",
       {Base::kFo, Outcome::kRunConfig, "world size (gang scheduled)",
        SET(s.mutable_resources()->set_ranks(2))}},
      {"resources.cores_per_rank",
       {Base::kZo, Outcome::kRunConfig, "reserved cores; threads default to them",
        SET(s.mutable_resources()->set_cores_per_rank(2))}},
      {"resources.memory_bytes_per_rank",
       {Base::kZo, Outcome::kCoordinator, "placement reserves it",
        SET(s.mutable_resources()->set_memory_bytes_per_rank(1 << 30))}},
      {"resources.gpus_per_rank",
       {Base::kZoOffload, Outcome::kRunConfig, "offloaded ZO's GPU stage",
        SET(s.mutable_resources()->set_gpus_per_rank(1))}},
      {"resources.nvme_bytes_per_rank",
       {Base::kZo, Outcome::kCoordinator, "placement reserves it",
        SET(s.mutable_resources()->set_nvme_bytes_per_rank(1 << 30))}},
      {"resources.node_selector",
       {Base::kZo, Outcome::kCoordinator, "placement matches worker labels",
        SET((*s.mutable_resources()->mutable_node_selector())["zone"] = "a")}},
      // Checkpoints.
      {"checkpoint.path",
       {Base::kZo, Outcome::kRunConfig, "checkpoint directory",
        SET(s.mutable_checkpoint()->set_path("/ckpt"))}},
      {"checkpoint.interval_steps",
       {Base::kZo, Outcome::kRunConfig, "checkpoint cadence",
        SET(s.mutable_checkpoint()->set_interval_steps(10))}},
      {"checkpoint.keep_last",
       {Base::kZo, Outcome::kRunConfig, "retention",
        SET(s.mutable_checkpoint()->set_keep_last(1))}},
      {"checkpoint.export_safetensors",
       {Base::kZo, Outcome::kRunConfig, "HF export at the end",
        SET(s.mutable_checkpoint()->set_export_safetensors(true))}},
      {"checkpoint.resume_from",
       {Base::kZo, Outcome::kRunConfig, "verified and copied in before step 1",
        SET(s.mutable_checkpoint()->set_resume_from("/old/ckpt-0000000010"))}},
      // Tasks.
      {"task.preset",
       {Base::kZoTask, Outcome::kRunConfig, "fills the fields left unset",
        SET(s.mutable_task()->set_preset("sst2"))}},
      {"task.kind",
       {Base::kZoTask, Outcome::kRunConfig, "how candidates are made",
        SET(s.mutable_task()->set_kind(v1::TASK_KIND_MULTIPLE_CHOICE);
            s.mutable_task()->clear_labels(); s.mutable_task()->add_choice_fields("a"))}},
      {"task.train_path",
       {Base::kZoTask, Outcome::kRunConfig, "training examples",
        SET(s.mutable_task()->set_train_path("/data/other.jsonl"))}},
      {"task.dev_path",
       {Base::kZoTask, Outcome::kRunConfig, "evaluation examples",
        SET(s.mutable_task()->set_dev_path("/data/dev.jsonl"))}},
      {"task.test_path",
       {Base::kZoTask, Outcome::kRunConfig, "held-out examples",
        SET(s.mutable_task()->set_test_path("/data/test.jsonl"))}},
      {"task.template",
       {Base::kZoTask, Outcome::kRunConfig, "the prompt",
        SET(s.mutable_task()->set_template_("{sentence}"))}},
      {"task.candidate_template",
       {Base::kZoTask, Outcome::kRunConfig, "each candidate's text",
        SET(s.mutable_task()->set_candidate_template("{candidate}"))}},
      {"task.label_field",
       {Base::kZoTask, Outcome::kRunConfig, "where the answer is",
        SET(s.mutable_task()->set_label_field("y"))}},
      {"task.labels",
       {Base::kZoTask, Outcome::kRunConfig, "classes and label words",
        SET(v1::TaskLabel* l = s.mutable_task()->add_labels(); l->set_value("2");
            l->set_text("fine"))}},
      {"task.choice_fields",
       {Base::kZoTask, Outcome::kRefused, "multiple choice only",
        SET(s.mutable_task()->add_choice_fields("a"))}},
      {"task.target_field",
       {Base::kZoTask, Outcome::kRefused, "generation only",
        SET(s.mutable_task()->set_target_field("answer"))}},
      {"task.score",
       {Base::kZoTask, Outcome::kRunConfig, "sum or mean log-likelihood",
        SET(s.mutable_task()->set_score(v1::CANDIDATE_SCORE_MEAN))}},
      {"task.objective",
       {Base::kZoTask, Outcome::kRunConfig, "what training minimizes",
        SET(s.mutable_task()->set_objective(v1::TASK_OBJECTIVE_ACCURACY))}},
      {"task.num_train",
       {Base::kZoTask, Outcome::kRunConfig, "sample size",
        SET(s.mutable_task()->set_num_train(16))}},
      {"task.num_dev",
       {Base::kZoTask, Outcome::kRunConfig, "sample size", SET(s.mutable_task()->set_num_dev(16))}},
      {"task.num_test",
       {Base::kZoTask, Outcome::kRunConfig, "sample size",
        SET(s.mutable_task()->set_num_test(16))}},
      {"task.sampling_seed",
       {Base::kZoTask, Outcome::kRunConfig, "which examples",
        SET(s.mutable_task()->set_sampling_seed(9))}},
      {"task.num_demonstrations",
       {Base::kZoTask, Outcome::kRunConfig, "k-shot baseline",
        SET(s.mutable_task()->set_num_demonstrations(4))}},
      {"task.demonstration_separator",
       {Base::kZoTask, Outcome::kRunConfig, "between demonstrations",
        SET(s.mutable_task()->set_demonstration_separator("\n"))}},
      {"task.max_new_tokens",
       {Base::kZoTask, Outcome::kRunConfig, "decoding bound",
        SET(s.mutable_task()->set_max_new_tokens(8))}},
      {"task.stop",
       {Base::kZoTask, Outcome::kRunConfig, "decoding stops",
        SET(s.mutable_task()->add_stop("."))}},
      // Federated.
      {"federated.num_rounds",
       {Base::kFederated, Outcome::kRounds, "rounds run",
        SET(s.mutable_federated()->set_num_rounds(5))}},
      {"federated.num_candidate_seeds",
       {Base::kFederated, Outcome::kRounds, "K",
        SET(s.mutable_federated()->set_num_candidate_seeds(64))}},
      {"federated.local_steps",
       {Base::kFederated, Outcome::kRounds, "tau", SET(s.mutable_federated()->set_local_steps(4))}},
      {"federated.fraction_train",
       {Base::kFederated, Outcome::kRounds, "sampling",
        SET(s.mutable_federated()->set_fraction_train(0.5))}},
      {"federated.min_train_nodes",
       {Base::kFederated, Outcome::kRounds, "sampling floor",
        SET(s.mutable_federated()->set_min_train_nodes(2))}},
      {"federated.min_available_nodes",
       {Base::kFederated, Outcome::kRounds, "round opening",
        SET(s.mutable_federated()->set_min_available_nodes(2))}},
      {"federated.min_replies",
       {Base::kFederated, Outcome::kRounds, "round success",
        SET(s.mutable_federated()->set_min_replies(2))}},
      {"federated.round_timeout",
       {Base::kFederated, Outcome::kRounds, "round deadline",
        SET(s.mutable_federated()->mutable_round_timeout()->set_seconds(5))}},
      {"federated.seed_probabilities",
       {Base::kFederated, Outcome::kRounds, "FedKSeed-Pro",
        SET(s.mutable_federated()->set_seed_probabilities(true))}},
      {"federated.scalar_clip",
       {Base::kFederated, Outcome::kRounds, "reply bound",
        SET(s.mutable_federated()->set_scalar_clip(100))}},
      {"federated.max_request_bytes",
       {Base::kFederated, Outcome::kRounds, "push size bound",
        SET(s.mutable_federated()->set_max_request_bytes(4096))}},
      {"federated.max_num_samples",
       {Base::kFederated, Outcome::kRounds, "client weight bound",
        SET(s.mutable_federated()->set_max_num_samples(500))}},
      {"federated.base_checkpoint_sha256",
       {Base::kFederated, Outcome::kRounds, "theta0 from the clients' checkpoint",
        SET(s.mutable_federated()->set_base_checkpoint_sha256(std::string(64, 'a')))}},
  };
  return *table;
}

// Leaf fields of `d` as dotted paths; strata.v1 messages are walked into, others are leaves.
void Leaves(const Descriptor* d, const std::string& prefix, std::set<std::string>* out) {
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    const std::string path = prefix.empty() ? f->name() : prefix + "." + f->name();
    if (f->type() == FieldDescriptor::TYPE_MESSAGE && !f->is_map() && !f->is_repeated() &&
        f->message_type()->file()->package() == "strata.v1") {
      Leaves(f->message_type(), path, out);
    } else {
      out->insert(path);
    }
  }
}

RankSite SiteFor(const v1::JobSpec& spec) {
  RankSite site = ProbeSite(spec);
  site.job_dir = "/work/jobs/j";
  return site;
}

TEST(JobSpecCoverageTest, FieldsAreAllClassified) {
  std::set<std::string> leaves;
  Leaves(v1::JobSpec::descriptor(), "", &leaves);
  for (const std::string& leaf : leaves) {
    EXPECT_EQ(Table().count(leaf), 1u)
        << "spec." << leaf << " is not classified: add a row saying how it is honoured, or "
        << "refuse it in NormalizeJobSpec";
  }
  for (const auto& [path, row] : Table()) {
    EXPECT_EQ(leaves.count(path), 1u) << path << " is classified but is not a JobSpec field";
  }
}

TEST(JobSpecCoverageTest, EachFieldChangesTheRunOrIsRefusedByName) {
  for (const auto& [path, row] : Table()) {
    SCOPED_TRACE("spec." + path + " (" + row.how + ")");
    const v1::JobSpec base = BaseSpec(row.base);
    v1::JobSpec changed = base;
    row.set(changed);
    auto base_normalized = NormalizeJobSpec(base);
    ASSERT_TRUE(base_normalized.ok()) << base_normalized.status();
    auto normalized = NormalizeJobSpec(changed);
    if (row.outcome == Outcome::kRefused) {
      ASSERT_FALSE(normalized.ok());
      EXPECT_EQ(normalized.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(normalized.status().message(), ::testing::HasSubstr("spec." + path + ":"));
      continue;
    }
    ASSERT_TRUE(normalized.ok()) << normalized.status();
    if (row.outcome != Outcome::kRunConfig) {
      EXPECT_NE(normalized->SerializeAsString(), base_normalized->SerializeAsString());
      continue;
    }
    auto base_run = BuildRunConfig(base, SiteFor(base));
    ASSERT_TRUE(base_run.ok()) << base_run.status();
    auto run = BuildRunConfig(changed, SiteFor(changed));
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_NE(run->SerializeAsString(), base_run->SerializeAsString());
  }
}

// A federated job's task: its definition reaches the round manager (and through it every
// client); what would name, sample or evaluate the job's own files is refused by name, since
// each client brings its own examples.
v1::JobSpec FederatedTaskSpec() {
  v1::JobSpec s = BaseSpec(Base::kFederated);
  v1::TaskSpec* task = s.mutable_task();
  task->set_kind(v1::TASK_KIND_CLASSIFICATION);
  task->set_template_("{sentence} Verdict:");
  for (const auto& [value, text] : {std::pair{"0", "terrible"}, {"1", "great"}}) {
    v1::TaskLabel* label = task->add_labels();
    label->set_value(value);
    label->set_text(text);
  }
  return s;
}

TEST(JobSpecCoverageTest, AFederatedJobTakesATaskDefinitionWithoutFiles) {
  auto normalized = NormalizeJobSpec(FederatedTaskSpec());
  ASSERT_TRUE(normalized.ok()) << normalized.status();
  EXPECT_EQ(normalized->task().label_field(), "label");
  EXPECT_EQ(normalized->task().candidate_template(), " {candidate}");
  EXPECT_EQ(normalized->task().objective(), v1::TASK_OBJECTIVE_CROSS_ENTROPY);
  EXPECT_EQ(normalized->task().sampling_seed(), 0u) << "nothing of the job's is sampled";
  auto again = NormalizeJobSpec(*normalized);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->SerializeAsString(), normalized->SerializeAsString());
  // The objective reaches the rounds.
  v1::JobSpec accuracy = FederatedTaskSpec();
  accuracy.mutable_task()->set_objective(v1::TASK_OBJECTIVE_ACCURACY);
  auto with_accuracy = NormalizeJobSpec(accuracy);
  ASSERT_TRUE(with_accuracy.ok()) << with_accuracy.status();
  EXPECT_EQ(with_accuracy->task().objective(), v1::TASK_OBJECTIVE_ACCURACY);
  // A preset's definition without its sample sizes.
  v1::JobSpec preset = BaseSpec(Base::kFederated);
  preset.mutable_task()->set_preset("sst2");
  auto with_preset = NormalizeJobSpec(preset);
  ASSERT_TRUE(with_preset.ok()) << with_preset.status();
  EXPECT_EQ(with_preset->task().kind(), v1::TASK_KIND_CLASSIFICATION);
  EXPECT_FALSE(with_preset->task().template_().empty());
  EXPECT_EQ(with_preset->task().num_train(), 0);
  EXPECT_EQ(with_preset->task().num_dev(), 0);
  EXPECT_EQ(with_preset->task().num_test(), 0);
}

TEST(JobSpecCoverageTest, AFederatedTaskRefusesFilesSamplingAndGenerationByName) {
  const std::vector<std::pair<std::string, std::function<void(v1::TaskSpec&)>>> refused = {
      {"task.train_path", [](v1::TaskSpec& t) { t.set_train_path("/data/train.jsonl"); }},
      {"task.dev_path", [](v1::TaskSpec& t) { t.set_dev_path("/data/dev.jsonl"); }},
      {"task.test_path", [](v1::TaskSpec& t) { t.set_test_path("/data/test.jsonl"); }},
      {"task.num_train", [](v1::TaskSpec& t) { t.set_num_train(16); }},
      {"task.num_dev", [](v1::TaskSpec& t) { t.set_num_dev(16); }},
      {"task.num_test", [](v1::TaskSpec& t) { t.set_num_test(16); }},
      {"task.sampling_seed", [](v1::TaskSpec& t) { t.set_sampling_seed(3); }},
      {"task.num_demonstrations", [](v1::TaskSpec& t) { t.set_num_demonstrations(2); }},
      {"task.kind",
       [](v1::TaskSpec& t) {
         t.set_kind(v1::TASK_KIND_GENERATION);
         t.clear_labels();
         t.set_target_field("answer");
       }},
  };
  for (const auto& [field, set] : refused) {
    SCOPED_TRACE(field);
    v1::JobSpec spec = FederatedTaskSpec();
    set(*spec.mutable_task());
    auto normalized = NormalizeJobSpec(spec);
    ASSERT_FALSE(normalized.ok());
    EXPECT_EQ(normalized.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(normalized.status().message(), ::testing::HasSubstr("spec." + field + ":"));
  }
  // The task's own rules hold for federated jobs too.
  v1::JobSpec one_label = FederatedTaskSpec();
  one_label.mutable_task()->mutable_labels()->RemoveLast();
  EXPECT_THAT(NormalizeJobSpec(one_label).status().message(),
              ::testing::HasSubstr("spec.task.labels:"));
}

TEST(JobSpecCoverageTest, AFederatedBaseCheckpointIsADigestAndReplacesTheSeed) {
  v1::JobSpec spec = BaseSpec(Base::kFederated);
  spec.mutable_federated()->set_base_checkpoint_sha256(std::string(64, 'A'));
  auto normalized = NormalizeJobSpec(spec);
  ASSERT_TRUE(normalized.ok()) << normalized.status();
  EXPECT_EQ(normalized->federated().base_checkpoint_sha256(), std::string(64, 'a'));
  EXPECT_EQ(normalized->model().init_seed(), 0u) << "theta0 is the checkpoint, not a seed";
  auto again = NormalizeJobSpec(*normalized);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->SerializeAsString(), normalized->SerializeAsString());
  v1::JobSpec short_digest = spec;
  short_digest.mutable_federated()->set_base_checkpoint_sha256("abc");
  EXPECT_THAT(NormalizeJobSpec(short_digest).status().message(),
              ::testing::HasSubstr("spec.federated.base_checkpoint_sha256:"));
  v1::JobSpec seeded = spec;
  seeded.mutable_model()->set_init_seed(7);
  EXPECT_THAT(NormalizeJobSpec(seeded).status().message(),
              ::testing::HasSubstr("spec.model.init_seed:"));
}

}  // namespace
}  // namespace strata
