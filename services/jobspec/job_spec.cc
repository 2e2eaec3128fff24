// See job_spec.h. The defaults are the ones documented in proto/strata/v1/job.proto and
// docs/config.md; job_spec_coverage_test.cc holds every field to one of "honoured" or "refused".
#include "services/jobspec/job_spec.h"

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status_macros.h"
#include "services/jobspec/spec_limits.h"
#include "services/jobspec/task_spec.h"

namespace strata {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

absl::Status Bad(const std::string& field, const std::string& why) {
  return SpecFieldError(field, why);
}

absl::Status NotSupported(const std::string& field, const std::string& why) {
  return Bad(field, absl::StrCat("not supported yet (", why, ")"));
}

bool Finite(double x) { return std::isfinite(x); }

// Where a user asks for no training: what to run instead.
constexpr char kEvaluateInstead[] =
    " (0 trains nothing: to score a model without training it, run `strata-train eval "
    "--init_from=DIR --task=FILE`)";

// The first field set in `message` (depth first, in field-number order), as a dotted path.
std::optional<std::string> FirstSetField(const Message& message, const std::string& prefix) {
  std::vector<const FieldDescriptor*> fields;
  message.GetReflection()->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    const std::string path = prefix.empty() ? field->name() : prefix + "." + field->name();
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !field->is_repeated() &&
        !field->is_map()) {
      const Message& sub = message.GetReflection()->GetMessage(message, field);
      if (std::optional<std::string> inner = FirstSetField(sub, path)) return inner;
      continue;
    }
    return path;
  }
  return std::nullopt;
}

// Federated jobs run no ranks: the rounds use these fields and nothing else, so any other
// field set on a federated job is refused by name.
absl::Status CheckFederatedFieldsOnly(const v1::JobSpec& in) {
  v1::JobSpec rest = in;
  rest.clear_name();
  rest.clear_labels();
  rest.clear_priority();
  rest.clear_max_restarts();
  rest.clear_federated();
  rest.clear_model();  // Sent to every client, which builds theta0 from it.
  rest.clear_peft();   // Adapters: the clients train them over the frozen theta0.
  rest.clear_task();   // The definition clients train with (NormalizeTask checks its fields).
  rest.mutable_data()->clear_batch_size();
  rest.mutable_data()->clear_seq_len();
  rest.mutable_training()->clear_seed();  // The root of the candidate seeds.
  rest.mutable_training()->clear_max_steps();
  if (rest.optimizer().has_zeroth_order()) {
    v1::ZerothOrderSpec* zo = rest.mutable_optimizer()->mutable_zeroth_order();
    zo->clear_lr();
    zo->clear_epsilon();
    if (zo->variant() == v1::ZO_VARIANT_SGD) zo->clear_variant();
    if (zo->num_perturbations() == 1) zo->clear_num_perturbations();
    if (zo->ByteSizeLong() == 0) rest.mutable_optimizer()->clear_kind();
  }
  if (rest.resources().ranks() == 1) rest.mutable_resources()->clear_ranks();
  if (std::optional<std::string> field = FirstSetField(rest, "")) {
    return Bad(*field,
               "not used by federated jobs (clients run ZO-SGD with the job's model, task, lr, "
               "epsilon, batch and sequence length on their own data)");
  }
  return absl::OkStatus();
}

absl::Status NormalizeModel(v1::JobSpec& spec) {
  v1::ModelSpec* model = spec.mutable_model();
  if (model->source_case() == v1::ModelSpec::SOURCE_NOT_SET) {
    return Bad("model", "set one of checkpoint_path, config_path or config_json");
  }
  if (model->has_checkpoint_path() && model->checkpoint_path().empty()) {
    return Bad("model.checkpoint_path", "empty");
  }
  if (model->has_config_path() && model->config_path().empty()) {
    return Bad("model.config_path", "empty");
  }
  if (model->storage_dtype() == v1::DTYPE_UNSPECIFIED) model->set_storage_dtype(v1::DTYPE_F32);
  if (model->storage_dtype() != v1::DTYPE_F32) {
    return NotSupported("model.storage_dtype",
                        "weights are stored fp32; offload.storage_dtype: DTYPE_BF16 stores "
                        "offloaded ZO blocks as bf16");
  }
  if (model->has_checkpoint_path()) {
    if (model->init_seed() != 0) {
      return Bad("model.init_seed", "the weights come from model.checkpoint_path, not a seed");
    }
  } else if (!spec.federated().base_checkpoint_sha256().empty()) {
    if (model->init_seed() != 0) {
      return Bad("model.init_seed",
                 "theta0 is the clients' base checkpoint (federated.base_checkpoint_sha256), "
                 "not a seeded initialization");
    }
  } else if (model->init_seed() == 0) {
    model->set_init_seed(spec.training().seed());
  }
  return absl::OkStatus();
}

absl::Status NormalizeData(v1::JobSpec& spec, bool federated) {
  v1::DataSpec* data = spec.mutable_data();
  if (federated) {
    // Clients train on their own text or task examples: only the batch shape is the job's
    // (every other data field was refused by CheckFederatedFieldsOnly, and no default is added,
    // so a normalized spec normalizes to itself).
    if (data->batch_size() <= 0) return Bad("data.batch_size", "must be positive");
    if (data->seq_len() <= 0) return Bad("data.seq_len", "must be positive");
    return absl::OkStatus();
  }
  if (spec.has_task()) {
    // The task's files are the data; only the batch shape, tokenizer and order are the data's.
    for (const auto& [field, set] :
         {std::pair{"data.train_paths", !data->train_paths().empty()},
          {"data.eval_paths", !data->eval_paths().empty()},
          {"data.format", data->format() != v1::DATA_FORMAT_UNSPECIFIED},
          {"data.text_field", !data->text_field().empty()},
          {"data.eval_batches", data->eval_batches() != 0},
          {"data.eval_fraction", data->eval_fraction() != 0}}) {
      if (set) {
        return Bad(field, "a task job reads its examples from task.train_path and task.dev_path");
      }
    }
    if (data->batch_size() <= 0) return Bad("data.batch_size", "must be positive");
    if (data->seq_len() <= 1) return Bad("data.seq_len", "must be at least 2");
    if (data->shuffle_seed() == 0) data->set_shuffle_seed(spec.training().seed());
    return absl::OkStatus();
  }
  if (data->train_paths().empty()) return Bad("data.train_paths", "needs at least one path");
  for (int i = 0; i < data->train_paths_size(); ++i) {
    if (data->train_paths(i).empty()) {
      return Bad(absl::StrCat("data.train_paths[", i, "]"), "empty");
    }
  }
  if (!data->eval_paths().empty()) {
    return NotSupported("data.eval_paths",
                        "the end of the training data is held out, see data.eval_fraction");
  }
  if (!data->text_field().empty() && data->format() != v1::DATA_FORMAT_UNSPECIFIED &&
      data->format() != v1::DATA_FORMAT_JSONL) {
    return Bad("data.text_field", "only DATA_FORMAT_JSONL data has fields");
  }
  const bool may_be_jsonl =
      data->format() == v1::DATA_FORMAT_UNSPECIFIED || data->format() == v1::DATA_FORMAT_JSONL;
  if (data->text_field().empty() && may_be_jsonl) data->set_text_field("text");
  if (data->batch_size() <= 0) return Bad("data.batch_size", "must be positive");
  if (data->seq_len() <= 0) return Bad("data.seq_len", "must be positive");
  if (data->shuffle_seed() == 0) data->set_shuffle_seed(spec.training().seed());
  if (data->eval_batches() < 0) return Bad("data.eval_batches", "must not be negative");
  if (data->eval_batches() == 0) data->set_eval_batches(8);
  if (data->eval_fraction() == 0) data->set_eval_fraction(0.05);
  if (!(data->eval_fraction() > 0 && data->eval_fraction() < 0.5)) {
    return Bad("data.eval_fraction", "must be in (0, 0.5)");
  }
  return absl::OkStatus();
}

absl::Status NormalizeSchedule(v1::LrSchedule* schedule) {
  if (schedule->kind() == v1::LR_SCHEDULE_KIND_UNSPECIFIED) {
    schedule->set_kind(v1::LR_SCHEDULE_KIND_CONSTANT);
  }
  if (schedule->warmup_steps() < 0) {
    return Bad("optimizer.schedule.warmup_steps", "must not be negative");
  }
  if (!(schedule->min_lr_ratio() >= 0 && schedule->min_lr_ratio() <= 1)) {
    return Bad("optimizer.schedule.min_lr_ratio", "must be in [0, 1]");
  }
  if (schedule->kind() == v1::LR_SCHEDULE_KIND_CONSTANT && schedule->min_lr_ratio() != 0) {
    return Bad("optimizer.schedule.min_lr_ratio",
               "only LR_SCHEDULE_KIND_LINEAR and LR_SCHEDULE_KIND_COSINE decay to it");
  }
  return absl::OkStatus();
}

// `beta` of an Adam-style optimizer: 0 means `fallback`; must be in [0, 1).
absl::Status DefaultBeta(double* beta, double fallback, const std::string& field) {
  if (*beta == 0) *beta = fallback;
  if (!(*beta >= 0 && *beta < 1)) return Bad(field, "must be in [0, 1)");
  return absl::OkStatus();
}

absl::Status NormalizeZerothOrder(v1::ZerothOrderSpec* zo) {
  const std::string p = "optimizer.zeroth_order.";
  if (!(zo->lr() > 0) || !Finite(zo->lr())) {
    return Bad(p + "lr", absl::StrCat("must be a positive number", kEvaluateInstead));
  }
  if (zo->variant() == v1::ZO_VARIANT_UNSPECIFIED) zo->set_variant(v1::ZO_VARIANT_SGD);
  if (zo->estimator() == v1::ZO_ESTIMATOR_UNSPECIFIED)
    zo->set_estimator(v1::ZO_ESTIMATOR_TWO_SIDED);
  if (zo->distribution() == v1::ZO_DISTRIBUTION_UNSPECIFIED) {
    zo->set_distribution(v1::ZO_DISTRIBUTION_GAUSSIAN);
  }
  if (zo->epsilon() == 0) zo->set_epsilon(1e-3);
  if (!(zo->epsilon() > 0) || !Finite(zo->epsilon())) return Bad(p + "epsilon", "must be positive");
  if (zo->num_perturbations() == 0) zo->set_num_perturbations(1);
  if (zo->num_perturbations() < 0 || zo->num_perturbations() > 1024) {
    return Bad(p + "num_perturbations", "must be 1-1024");
  }
  const bool stateful =
      zo->variant() == v1::ZO_VARIANT_SGD_MOMENTUM || zo->variant() == v1::ZO_VARIANT_ADAM;
  if (stateful && zo->num_perturbations() != 1) {
    return Bad(p + "num_perturbations", "momentum and Adam variants take one perturbation a step");
  }
  if (!(zo->weight_decay() >= 0) || !Finite(zo->weight_decay())) {
    return Bad(p + "weight_decay", "must not be negative");
  }
  if (zo->variant() == v1::ZO_VARIANT_SGD_MOMENTUM) {
    double momentum = zo->momentum();
    STRATA_RETURN_IF_ERROR(DefaultBeta(&momentum, 0.9, p + "momentum"));
    zo->set_momentum(momentum);
  } else if (zo->momentum() != 0) {
    return Bad(p + "momentum", "only ZO_VARIANT_SGD_MOMENTUM uses it");
  }
  if (zo->variant() == v1::ZO_VARIANT_ADAM) {
    double beta1 = zo->beta1(), beta2 = zo->beta2();
    STRATA_RETURN_IF_ERROR(DefaultBeta(&beta1, 0.9, p + "beta1"));
    STRATA_RETURN_IF_ERROR(DefaultBeta(&beta2, 0.999, p + "beta2"));
    zo->set_beta1(beta1);
    zo->set_beta2(beta2);
    if (zo->adam_epsilon() == 0) zo->set_adam_epsilon(1e-8);
    if (!(zo->adam_epsilon() > 0)) return Bad(p + "adam_epsilon", "must be positive");
  } else {
    for (const auto& [value, name] : {std::pair{zo->beta1(), "beta1"},
                                      {zo->beta2(), "beta2"},
                                      {zo->adam_epsilon(), "adam_epsilon"}}) {
      if (value != 0) return Bad(p + name, "only ZO_VARIANT_ADAM uses it");
    }
  }
  if (!(zo->sparse_quantile() >= 0 && zo->sparse_quantile() < 1)) {
    return Bad(p + "sparse_quantile", "must be in [0, 1)");
  }
  if (!(zo->scalar_clip() >= 0)) return Bad(p + "scalar_clip", "must not be negative");
  return absl::OkStatus();
}

absl::Status NormalizeAdamW(v1::AdamWSpec* adam) {
  const std::string p = "optimizer.adamw.";
  if (!(adam->lr() > 0) || !Finite(adam->lr())) {
    return Bad(p + "lr", absl::StrCat("must be a positive number", kEvaluateInstead));
  }
  double beta1 = adam->beta1(), beta2 = adam->beta2();
  STRATA_RETURN_IF_ERROR(DefaultBeta(&beta1, 0.9, p + "beta1"));
  STRATA_RETURN_IF_ERROR(DefaultBeta(&beta2, 0.999, p + "beta2"));
  adam->set_beta1(beta1);
  adam->set_beta2(beta2);
  if (adam->epsilon() == 0) adam->set_epsilon(1e-8);
  if (!(adam->epsilon() > 0)) return Bad(p + "epsilon", "must be positive");
  if (!(adam->weight_decay() >= 0)) return Bad(p + "weight_decay", "must not be negative");
  if (!(adam->grad_clip_norm() >= 0)) return Bad(p + "grad_clip_norm", "must not be negative");
  if (adam->bf16_compute_copy()) {
    return Bad(p + "bf16_compute_copy",
               "set zero.compute_dtype: DTYPE_BF16 (with zero.stage 3) for the bf16 copy");
  }
  return absl::OkStatus();
}

absl::Status NormalizeFederated(v1::JobSpec& spec) {
  v1::FederatedSpec* fed = spec.mutable_federated();
  if (fed->num_rounds() < 0) return Bad("federated.num_rounds", "must be positive");
  if (!spec.optimizer().has_zeroth_order()) {
    return Bad("optimizer", "federated jobs are zeroth-order (optimizer.zeroth_order)");
  }
  if (!spec.model().has_config_json()) {
    return Bad("model.config_json",
               "federated jobs need the model inline: every client builds theta0 from it");
  }
  STRATA_RETURN_IF_ERROR(CheckFederatedFieldsOnly(spec));
  if (fed->num_candidate_seeds() == 0) fed->set_num_candidate_seeds(4096);
  if (fed->num_candidate_seeds() < 1 || fed->num_candidate_seeds() > (1 << 20)) {
    return Bad("federated.num_candidate_seeds", "must be 1-1048576");
  }
  if (fed->local_steps() == 0) fed->set_local_steps(1);
  if (fed->local_steps() < 1 || fed->local_steps() > 100000) {
    return Bad("federated.local_steps", "must be 1-100000");
  }
  if (fed->fraction_train() < 0 || fed->fraction_train() > 1) {
    return Bad("federated.fraction_train", "must be in [0, 1] (0: every online client)");
  }
  if (fed->min_train_nodes() < 0) return Bad("federated.min_train_nodes", "must not be negative");
  if (fed->min_available_nodes() < 0) {
    return Bad("federated.min_available_nodes", "must not be negative");
  }
  if (fed->min_replies() < 0) return Bad("federated.min_replies", "must not be negative");
  if (fed->round_timeout().seconds() < 0 || fed->round_timeout().nanos() < 0) {
    return Bad("federated.round_timeout", "must not be negative");
  }
  if (!(fed->scalar_clip() >= 0) || !Finite(fed->scalar_clip())) {
    return Bad("federated.scalar_clip", "must be a finite non-negative number");
  }
  if (!fed->base_checkpoint_sha256().empty()) {
    std::string* digest = fed->mutable_base_checkpoint_sha256();
    absl::AsciiStrToLower(digest);
    if (digest->size() != 64 ||
        digest->find_first_not_of("0123456789abcdef") != std::string::npos) {
      return Bad("federated.base_checkpoint_sha256",
                 "must be a sha256 digest: 64 hex digits (sha256sum DIR/model.safetensors)");
    }
  }
  if (fed->max_num_samples() == 0) fed->set_max_num_samples(10000);
  if (fed->max_num_samples() < 1) return Bad("federated.max_num_samples", "must be positive");
  if (fed->max_request_bytes() == 0) fed->set_max_request_bytes(64 << 10);
  if (fed->max_request_bytes() < 1024) {
    return Bad("federated.max_request_bytes", "must be at least 1024");
  }
  // Steps are the clients' business: the job's step count is rounds x local steps.
  const int64_t steps = static_cast<int64_t>(fed->num_rounds()) * fed->local_steps();
  if (spec.training().max_steps() != 0 && spec.training().max_steps() != steps) {
    return Bad("training.max_steps",
               absl::StrCat("federated jobs run federated.num_rounds x federated.local_steps = ",
                            steps, " steps; leave it unset"));
  }
  spec.mutable_training()->set_max_steps(steps);
  spec.mutable_optimizer()->mutable_zeroth_order()->set_variant(v1::ZO_VARIANT_SGD);
  if (spec.optimizer().zeroth_order().epsilon() == 0) {
    spec.mutable_optimizer()->mutable_zeroth_order()->set_epsilon(1e-3);
  }
  if (fed->scalar_clip() == 0) {
    // Derived from the job: two cross-entropy losses over V classes at most 2 ln V apart. A
    // task's objective is bounded alike (docs/federated.md): its candidate cross-entropy by the
    // right candidate's summed token loss, 1 - accuracy and 1 - F1 by 1.
    const nlohmann::json config =
        nlohmann::json::parse(spec.model().config_json(), nullptr, /*allow_exceptions=*/false);
    const double epsilon = spec.optimizer().zeroth_order().epsilon();
    if (!config.is_object() || !config.contains("vocab_size") ||
        !config["vocab_size"].is_number_integer() || config["vocab_size"].get<int64_t>() < 2 ||
        !(epsilon > 0)) {
      return Bad("federated.scalar_clip",
                 "0 derives the bound from model.config_json's vocab_size and "
                 "optimizer.zeroth_order.epsilon; set it explicitly");
    }
    fed->set_scalar_clip(std::log(static_cast<double>(config["vocab_size"].get<int64_t>())) /
                         epsilon);
  }
  if (!(spec.optimizer().zeroth_order().lr() > 0)) {
    return Bad("optimizer.zeroth_order.lr", "must be a positive number");
  }
  if (!(spec.optimizer().zeroth_order().epsilon() > 0)) {
    return Bad("optimizer.zeroth_order.epsilon", "must be positive");
  }
  STRATA_RETURN_IF_ERROR(NormalizeData(spec, /*federated=*/true));
  if (spec.resources().ranks() == 0) spec.mutable_resources()->set_ranks(1);
  if (!spec.has_max_restarts()) spec.set_max_restarts(5);
  if (spec.max_restarts() < 0) return Bad("max_restarts", "must not be negative");
  return absl::OkStatus();
}

absl::Status NormalizeZeroAndOffload(v1::JobSpec& spec) {
  const bool fo = spec.optimizer().has_adamw();
  v1::ZeroSpec* zero = spec.mutable_zero();
  if (zero->stage() < 0 || zero->stage() > 3) return Bad("zero.stage", "must be 0, 1, 2 or 3");
  if (!fo && zero->stage() != 0) return Bad("zero.stage", "ZeRO is for adamw jobs");
  if (zero->stage() == 3) {
    if (zero->prefetch_blocks() == 0) zero->set_prefetch_blocks(1);
    if (zero->prefetch_blocks() != 1) {
      return NotSupported("zero.prefetch_blocks", "stage 3 gathers exactly one block ahead: 1");
    }
  } else if (zero->prefetch_blocks() != 0) {
    return Bad("zero.prefetch_blocks", "only zero.stage 3 gathers blocks");
  }
  if (zero->compute_dtype() == v1::DTYPE_UNSPECIFIED) zero->set_compute_dtype(v1::DTYPE_F32);
  if (zero->compute_dtype() == v1::DTYPE_F16 ||
      (zero->compute_dtype() == v1::DTYPE_BF16 && zero->stage() != 3)) {
    return Bad("zero.compute_dtype", "DTYPE_BF16 needs zero.stage 3; DTYPE_F16 is not supported");
  }
  v1::OffloadSpec* offload = spec.mutable_offload();
  if (fo && (offload->param_tier() == v1::TIER_CPU || offload->param_tier() == v1::TIER_GPU ||
             (offload->param_tier() == v1::TIER_NVME && zero->stage() != 3))) {
    return Bad("offload.param_tier",
               "first-order jobs offload their weights with TIER_NVME and zero.stage 3 (the "
               "weights already live in host memory)");
  }
  if (!fo && offload->param_tier() == v1::TIER_GPU) {
    return Bad("offload.param_tier",
               "zeroth-order weights rest on TIER_CPU or TIER_NVME (resources.gpus_per_rank "
               "runs the streamed blocks on a GPU)");
  }
  const bool zo_offloaded =
      !fo && (offload->param_tier() == v1::TIER_CPU || offload->param_tier() == v1::TIER_NVME);
  if (offload->optimizer_tier() == v1::TIER_GPU) {
    return Bad("offload.optimizer_tier", "TIER_GPU is not supported (TIER_CPU or TIER_NVME)");
  }
  if (!fo && offload->optimizer_tier() != v1::TIER_UNSPECIFIED) {
    return Bad("offload.optimizer_tier", "optimizer-state offload is for adamw jobs");
  }
  if (fo && offload->optimizer_tier() == v1::TIER_UNSPECIFIED) {
    offload->set_optimizer_tier(v1::TIER_CPU);
  }
  if (!offload->nvme_paths().empty()) {
    return NotSupported("offload.nvme_paths", "ranks offload to their worker's --nvme_paths");
  }
  if (offload->queue_depth() != 0) {
    return NotSupported("offload.queue_depth", "the I/O engine's queue depth is fixed");
  }
  if (offload->io_block_bytes() != 0) {
    return NotSupported("offload.io_block_bytes", "requests are one tensor or sub-group each");
  }
  if (offload->memory_budget_bytes() < 0) {
    return Bad("offload.memory_budget_bytes", "must not be negative");
  }
  if (!zo_offloaded && offload->memory_budget_bytes() != 0) {
    return Bad("offload.memory_budget_bytes",
               "bounds offloaded ZO only (optimizer.zeroth_order with offload.param_tier "
               "TIER_CPU or TIER_NVME)");
  }
  if (offload->storage_dtype() == v1::DTYPE_UNSPECIFIED) offload->set_storage_dtype(v1::DTYPE_F32);
  if (offload->storage_dtype() == v1::DTYPE_F16 ||
      (offload->storage_dtype() == v1::DTYPE_BF16 && !zo_offloaded)) {
    return Bad("offload.storage_dtype",
               "DTYPE_BF16 is for offloaded ZO blocks; DTYPE_F16 is not "
               "supported");
  }
  if (zo_offloaded) {
    if (offload->prefetch_blocks() == 0) offload->set_prefetch_blocks(2);
    if (offload->prefetch_blocks() < 1 || offload->prefetch_blocks() > 64) {
      return Bad("offload.prefetch_blocks", "must be 1-64");
    }
    const v1::ZerothOrderSpec& zo = spec.optimizer().zeroth_order();
    if (zo.variant() != v1::ZO_VARIANT_SGD && zo.variant() != v1::ZO_VARIANT_SGD_SIGN) {
      return Bad("optimizer.zeroth_order.variant",
                 "offloaded ZO runs ZO_VARIANT_SGD and ZO_VARIANT_SGD_SIGN");
    }
  } else if (offload->prefetch_blocks() != 0) {
    return Bad("offload.prefetch_blocks", "only offloaded ZO reads blocks ahead");
  }
  if (spec.resources().gpus_per_rank() > 0 && !zo_offloaded) {
    return NotSupported("resources.gpus_per_rank",
                        "only offloaded ZO runs on a GPU: offload.param_tier TIER_CPU or "
                        "TIER_NVME");
  }
  if (spec.resources().gpus_per_rank() > 1) {
    return NotSupported("resources.gpus_per_rank", "a rank runs on one GPU");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SpecFieldError(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("spec.", field, ": ", why));
}

absl::Status CheckEnumsDeclared(const Message& message, const std::string& prefix) {
  const google::protobuf::Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    const std::string path = prefix + "." + field->name();
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_ENUM) {
      const int count = field->is_repeated() ? reflection->FieldSize(message, field) : 1;
      for (int i = 0; i < count; ++i) {
        const int number = field->is_repeated()
                               ? reflection->GetRepeatedEnumValue(message, field, i)
                               : reflection->GetEnumValue(message, field);
        if (field->enum_type()->FindValueByNumber(number) == nullptr) {
          return absl::InvalidArgumentError(absl::StrCat(path, ": ", number, " is not a value of ",
                                                         field->enum_type()->full_name()));
        }
      }
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      const int count = field->is_repeated() ? reflection->FieldSize(message, field) : 1;
      for (int i = 0; i < count; ++i) {
        const Message& sub = field->is_repeated()
                                 ? reflection->GetRepeatedMessage(message, field, i)
                                 : reflection->GetMessage(message, field);
        STRATA_RETURN_IF_ERROR(CheckEnumsDeclared(sub, path));
      }
    }
  }
  return absl::OkStatus();
}

// LoRA or a prefix: the adapters are the trained part, in memory; zeroth-order (sgd, sign; the
// base in memory or offloaded, streamed read-only) or first-order AdamW at ZeRO stage 0 (one
// rank or data parallel).
absl::Status NormalizePeft(v1::JobSpec& spec) {
  const bool lora_set = spec.peft().has_lora(), prefix_set = spec.peft().has_prefix();
  if (!lora_set && !prefix_set) {
    spec.clear_peft();
    return absl::OkStatus();
  }
  if (lora_set && prefix_set) return Bad("peft", "set one of lora and prefix");
  const std::string field = lora_set ? "peft.lora" : "peft.prefix";
  const std::string what = lora_set ? "LoRA" : "prefix tuning";
  if (spec.optimizer().has_zeroth_order()) {
    if (spec.optimizer().zeroth_order().variant() != v1::ZO_VARIANT_SGD &&
        spec.optimizer().zeroth_order().variant() != v1::ZO_VARIANT_SGD_SIGN) {
      return NotSupported(field,
                          what + " runs the ZO_VARIANT_SGD and ZO_VARIANT_SGD_SIGN variants");
    }
    if (spec.optimizer().zeroth_order().sparse_quantile() != 0) {
      return NotSupported(field, "Sparse-MeZO masks over adapters");
    }
    if (spec.resources().gpus_per_rank() > 0) {
      return NotSupported(field, what + " on a GPU; leave resources.gpus_per_rank 0");
    }
  } else {
    if (spec.zero().stage() != 0) {
      return NotSupported(field, "ZeRO stages 1-3 with " + what +
                                     " (the adapters are replicated); use zero.stage 0");
    }
    if (spec.offload().optimizer_tier() == v1::TIER_NVME) {
      return NotSupported(field,
                          "adapters' AdamW state on NVMe; leave offload.optimizer_tier unset");
    }
  }
  if (prefix_set) {
    v1::PrefixSpec* prefix = spec.mutable_peft()->mutable_prefix();
    if (prefix->num_tokens() == 0) prefix->set_num_tokens(5);
    if (prefix->num_tokens() < 1 || prefix->num_tokens() > 4096) {
      return Bad("peft.prefix.num_tokens", "must be 1-4096");
    }
    if (prefix->init_from_activations() && (spec.has_federated() || spec.resources().ranks() > 1)) {
      // Processes on different CPUs compute activations to different bits; federated clients
      // and data-parallel ranks must all start from the same prefix.
      return NotSupported("peft.prefix.init_from_activations",
                          "in federated and multi-rank jobs, whose processes must start from the "
                          "same bits");
    }
    if (prefix->init_from_activations() && spec.offload().param_tier() != v1::TIER_UNSPECIFIED) {
      return NotSupported("peft.prefix.init_from_activations",
                          "with offloaded weights (the activations need them in memory)");
    }
    return absl::OkStatus();
  }
  v1::LoraSpec* lora = spec.mutable_peft()->mutable_lora();
  if (lora->r() == 0) lora->set_r(8);
  if (lora->r() < 0 || lora->r() > 4096) return Bad("peft.lora.r", "must be 1-4096");
  if (lora->alpha() == 0) lora->set_alpha(16);
  if (!(lora->alpha() > 0) || !Finite(lora->alpha())) {
    return Bad("peft.lora.alpha", "must be a positive number");
  }
  if (lora->target_modules_size() > 64) return Bad("peft.lora.target_modules", "at most 64");
  for (const std::string& t : lora->target_modules()) {
    if (t.empty() || t.size() > 128) {
      return Bad("peft.lora.target_modules", "each must be 1-128 characters");
    }
    if (t == "all-linear" && lora->target_modules_size() != 1) {
      return Bad("peft.lora.target_modules", "\"all-linear\" stands alone");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::JobSpec> NormalizeJobSpec(const v1::JobSpec& in) {
  STRATA_RETURN_IF_ERROR(CheckSpecLimits(in));
  STRATA_RETURN_IF_ERROR(CheckEnumsDeclared(in, "spec"));
  v1::JobSpec spec = in;
  if (spec.name().empty()) return Bad("name", "must not be empty");
  if (spec.name().size() > 128) return Bad("name", "must be at most 128 characters");
  if (spec.priority() == 0) spec.set_priority(42);
  if (spec.priority() < 1 || spec.priority() > 99) {
    return Bad("priority", absl::StrCat("must be 1-99 (lower runs first), got ", spec.priority()));
  }
  if (spec.optimizer().kind_case() == v1::OptimizerSpec::KIND_NOT_SET) {
    return Bad("optimizer", "set zeroth_order or adamw");
  }
  // Seeds first: the model's and the data's default to the master seed.
  v1::TrainingSpec* training = spec.mutable_training();
  if (training->seed() == 0) training->set_seed(1);
  STRATA_RETURN_IF_ERROR(NormalizeModel(spec));
  if (spec.has_federated() && spec.federated().ByteSizeLong() > 0) {
    if (spec.federated().num_rounds() == 0) {
      return Bad("federated.num_rounds", "must be set for a federated job");
    }
    STRATA_RETURN_IF_ERROR(NormalizeFederated(spec));
    STRATA_RETURN_IF_ERROR(NormalizePeft(spec));
    STRATA_RETURN_IF_ERROR(NormalizeTask(spec));
    return spec;
  }
  STRATA_RETURN_IF_ERROR(NormalizeData(spec, /*federated=*/false));
  v1::OptimizerSpec* opt = spec.mutable_optimizer();
  STRATA_RETURN_IF_ERROR(NormalizeSchedule(opt->mutable_schedule()));
  if (opt->has_zeroth_order()) {
    STRATA_RETURN_IF_ERROR(NormalizeZerothOrder(opt->mutable_zeroth_order()));
  } else {
    STRATA_RETURN_IF_ERROR(NormalizeAdamW(opt->mutable_adamw()));
  }
  // Training.
  if (training->max_steps() <= 0) {
    return Bad("training.max_steps", absl::StrCat("must be positive", kEvaluateInstead));
  }
  if (training->log_interval() < 0) return Bad("training.log_interval", "must not be negative");
  if (training->log_interval() == 0) training->set_log_interval(10);
  if (training->eval_interval() < 0) return Bad("training.eval_interval", "must not be negative");
  if (training->eval_interval() == 0) training->set_eval_interval(training->max_steps());
  if (training->threads() < 0) return Bad("training.threads", "must not be negative");
  // Resources.
  v1::Resources* res = spec.mutable_resources();
  if (res->ranks() == 0) res->set_ranks(1);
  if (res->ranks() < 0 || res->ranks() > 1024) return Bad("resources.ranks", "must be 1-1024");
  if (res->ranks() > 1 && !opt->has_adamw()) {
    return Bad("resources.ranks", "ZO jobs run one rank (data-parallel ZO is not supported)");
  }
  if (res->cores_per_rank() == 0) res->set_cores_per_rank(1);
  if (res->cores_per_rank() < 0) return Bad("resources.cores_per_rank", "must be positive");
  if (training->threads() == 0) training->set_threads(res->cores_per_rank());
  if (res->memory_bytes_per_rank() < 0) {
    return Bad("resources.memory_bytes_per_rank", "must not be negative");
  }
  if (res->gpus_per_rank() < 0) return Bad("resources.gpus_per_rank", "must not be negative");
  if (res->nvme_bytes_per_rank() < 0) {
    return Bad("resources.nvme_bytes_per_rank", "must not be negative");
  }
  STRATA_RETURN_IF_ERROR(NormalizeZeroAndOffload(spec));
  STRATA_RETURN_IF_ERROR(NormalizePeft(spec));
  STRATA_RETURN_IF_ERROR(NormalizeTask(spec));
  // Checkpoints.
  v1::CheckpointPolicy* ckpt = spec.mutable_checkpoint();
  if (ckpt->interval_steps() < 0) return Bad("checkpoint.interval_steps", "must not be negative");
  if (ckpt->keep_last() < 0) return Bad("checkpoint.keep_last", "must not be negative");
  if (ckpt->keep_last() == 0) ckpt->set_keep_last(3);
  if (res->ranks() > 1 && ckpt->keep_last() < 2) {
    return Bad("checkpoint.keep_last",
               "multi-rank jobs keep at least 2 (the newest step every rank has must survive a "
               "crash between their commits)");
  }
  if (!ckpt->resume_from().empty() && res->ranks() > 1) {
    return NotSupported("checkpoint.resume_from",
                        "multi-rank jobs resume from their own "
                        "checkpoint.path");
  }
  if (!spec.has_max_restarts()) spec.set_max_restarts(5);
  if (spec.max_restarts() < 0) return Bad("max_restarts", "must not be negative");
  return spec;
}

}  // namespace strata
