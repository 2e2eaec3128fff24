// See job_spec.h. Defaults are the ones documented in proto/strata/v1/job.proto.
#include "services/coordinator/job_spec.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"

namespace strata {
namespace {

absl::Status Bad(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("spec.", field, ": ", why));
}

}  // namespace

absl::StatusOr<v1::JobSpec> NormalizeJobSpec(const v1::JobSpec& in) {
  v1::JobSpec spec = in;
  if (spec.name().empty()) return Bad("name", "must not be empty");
  if (spec.name().size() > 128) return Bad("name", "must be at most 128 characters");
  if (spec.priority() == 0) spec.set_priority(42);
  if (spec.priority() < 1 || spec.priority() > 99) {
    return Bad("priority", absl::StrCat("must be 1-99 (lower runs first), got ", spec.priority()));
  }
  // Model.
  const v1::ModelSpec& model = spec.model();
  if (model.source_case() == v1::ModelSpec::SOURCE_NOT_SET) {
    return Bad("model", "set one of checkpoint_path, config_path or config_json");
  }
  if (model.storage_dtype() == v1::DTYPE_F16) {
    return Bad("model.storage_dtype", "DTYPE_F16 is not supported (use DTYPE_F32 or DTYPE_BF16)");
  }
  // Data.
  v1::DataSpec* data = spec.mutable_data();
  if (data->train_paths().empty()) return Bad("data.train_paths", "needs at least one path");
  for (int i = 0; i < data->train_paths_size(); ++i) {
    if (data->train_paths(i).empty())
      return Bad(absl::StrCat("data.train_paths[", i, "]"), "empty");
  }
  if (data->batch_size() <= 0) return Bad("data.batch_size", "must be positive");
  if (data->seq_len() <= 0) return Bad("data.seq_len", "must be positive");
  if (data->eval_batches() < 0) return Bad("data.eval_batches", "must not be negative");
  if (data->eval_batches() == 0) data->set_eval_batches(8);
  // Optimizer.
  v1::OptimizerSpec* opt = spec.mutable_optimizer();
  switch (opt->kind_case()) {
    case v1::OptimizerSpec::kZerothOrder: {
      v1::ZerothOrderSpec* zo = opt->mutable_zeroth_order();
      if (!(zo->lr() > 0) || !std::isfinite(zo->lr())) {
        return Bad("optimizer.zeroth_order.lr", "must be a positive number");
      }
      if (zo->epsilon() == 0) zo->set_epsilon(1e-3);
      if (!(zo->epsilon() > 0)) return Bad("optimizer.zeroth_order.epsilon", "must be positive");
      if (zo->num_perturbations() == 0) zo->set_num_perturbations(1);
      if (zo->num_perturbations() < 0) {
        return Bad("optimizer.zeroth_order.num_perturbations", "must be positive");
      }
      if (zo->sparse_quantile() < 0 || zo->sparse_quantile() >= 1) {
        return Bad("optimizer.zeroth_order.sparse_quantile", "must be in [0, 1)");
      }
      if (zo->weight_decay() < 0) {
        return Bad("optimizer.zeroth_order.weight_decay", "must not be negative");
      }
      break;
    }
    case v1::OptimizerSpec::kAdamw: {
      v1::AdamWSpec* adam = opt->mutable_adamw();
      if (!(adam->lr() > 0) || !std::isfinite(adam->lr())) {
        return Bad("optimizer.adamw.lr", "must be a positive number");
      }
      if (adam->weight_decay() < 0) return Bad("optimizer.adamw.weight_decay", "negative");
      break;
    }
    case v1::OptimizerSpec::KIND_NOT_SET:
      return Bad("optimizer", "set zeroth_order or adamw");
  }
  // Federated (FedKSeed rounds with edge clients).
  const bool federated = spec.has_federated() && spec.federated().num_rounds() != 0;
  if (federated) {
    v1::FederatedSpec* fed = spec.mutable_federated();
    if (fed->num_rounds() < 0) return Bad("federated.num_rounds", "must be positive");
    if (!spec.optimizer().has_zeroth_order()) {
      return Bad("optimizer", "federated jobs are zeroth-order (optimizer.zeroth_order)");
    }
    if (!spec.model().has_config_json()) {
      return Bad("model.config_json",
                 "federated jobs need the model inline: every client builds theta0 from it");
    }
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
    if (fed->min_train_nodes() < 0 || fed->min_available_nodes() < 0 || fed->min_replies() < 0) {
      return Bad("federated.min_train_nodes", "node and reply minimums must not be negative");
    }
    if (fed->scalar_clip() < 0) return Bad("federated.scalar_clip", "must not be negative");
    if (fed->max_request_bytes() == 0) fed->set_max_request_bytes(64 << 10);
    if (fed->max_request_bytes() < 1024) {
      return Bad("federated.max_request_bytes", "must be at least 1024");
    }
    if (spec.resources().ranks() > 1) return Bad("resources.ranks", "federated jobs use clients");
    // Steps are the clients' business: the job's max_steps is ignored.
    if (spec.training().max_steps() <= 0) {
      spec.mutable_training()->set_max_steps(static_cast<int64_t>(fed->num_rounds()) *
                                             fed->local_steps());
    }
  }
  // Training.
  v1::TrainingSpec* training = spec.mutable_training();
  if (training->max_steps() <= 0) return Bad("training.max_steps", "must be positive");
  if (training->log_interval() < 0) return Bad("training.log_interval", "must not be negative");
  if (training->log_interval() == 0) training->set_log_interval(10);
  if (training->eval_interval() < 0) return Bad("training.eval_interval", "must not be negative");
  if (training->threads() < 0) return Bad("training.threads", "must not be negative");
  // Resources.
  v1::Resources* res = spec.mutable_resources();
  if (res->ranks() == 0) res->set_ranks(1);
  if (res->ranks() < 0 || res->ranks() > 1024) return Bad("resources.ranks", "must be 1-1024");
  if (res->ranks() > 1 && opt->kind_case() == v1::OptimizerSpec::kZerothOrder) {
    return Bad("resources.ranks", "ZO jobs run one rank (data-parallel ZO is not supported)");
  }
  if (spec.zero().stage() < 0 || spec.zero().stage() > 3) {
    return Bad("zero.stage", "must be 0, 1, 2 or 3");
  }
  if (spec.zero().compute_dtype() == v1::DTYPE_F16 ||
      (spec.zero().compute_dtype() == v1::DTYPE_BF16 && spec.zero().stage() != 3)) {
    return Bad("zero.compute_dtype", "DTYPE_BF16 needs zero.stage 3; DTYPE_F16 is not supported");
  }
  if (spec.zero().prefetch_blocks() > 1) {
    return Bad("zero.prefetch_blocks", "stage 3 gathers one block ahead (0 or 1)");
  }
  if (res->cores_per_rank() == 0) res->set_cores_per_rank(1);
  if (res->cores_per_rank() < 0) return Bad("resources.cores_per_rank", "must be positive");
  if (res->memory_bytes_per_rank() < 0) {
    return Bad("resources.memory_bytes_per_rank", "must not be negative");
  }
  if (res->gpus_per_rank() < 0) return Bad("resources.gpus_per_rank", "must not be negative");
  if (res->nvme_bytes_per_rank() < 0) {
    return Bad("resources.nvme_bytes_per_rank", "must not be negative");
  }
  // Offload.
  const v1::OffloadSpec& offload = spec.offload();
  if (opt->kind_case() == v1::OptimizerSpec::kAdamw &&
      (offload.param_tier() == v1::TIER_CPU ||
       (offload.param_tier() == v1::TIER_NVME && spec.zero().stage() != 3))) {
    return Bad("offload.param_tier",
               "first-order jobs offload their weights with TIER_NVME and zero.stage 3 (the "
               "weights already live in host memory)");
  }
  if (offload.optimizer_tier() == v1::TIER_GPU) {
    return Bad("offload.optimizer_tier", "TIER_GPU is not supported (TIER_CPU or TIER_NVME)");
  }
  if (offload.optimizer_tier() == v1::TIER_NVME && opt->kind_case() != v1::OptimizerSpec::kAdamw) {
    return Bad("offload.optimizer_tier", "optimizer-state offload is for adamw jobs");
  }
  if (offload.memory_budget_bytes() < 0) {
    return Bad("offload.memory_budget_bytes", "must not be negative");
  }
  // Checkpoints.
  v1::CheckpointPolicy* ckpt = spec.mutable_checkpoint();
  if (ckpt->interval_steps() < 0) return Bad("checkpoint.interval_steps", "must not be negative");
  if (ckpt->keep_last() < 0) return Bad("checkpoint.keep_last", "must not be negative");
  if (ckpt->keep_last() == 0) ckpt->set_keep_last(3);
  if (!spec.has_max_restarts()) spec.set_max_restarts(5);
  if (spec.max_restarts() < 0) return Bad("max_restarts", "must not be negative");
  return spec;
}

}  // namespace strata
