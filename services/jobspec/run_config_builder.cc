// See run_config_builder.h.
#include "services/jobspec/run_config_builder.h"

#include "absl/strings/str_cat.h"
#include "services/jobspec/job_spec.h"

namespace strata {

RankSite ProbeSite(const v1::JobSpec& spec) {
  RankSite site;
  site.job_id = "submit";
  site.world_size = spec.resources().ranks() > 0 ? spec.resources().ranks() : 1;
  site.job_dir = "/probe/job";
  site.nvme_dirs = {"/probe/nvme"};
  if (spec.resources().gpus_per_rank() > 0) site.gpu_indices = {0};
  site.rendezvous.set_coordinator("probe:0");
  return site;
}

absl::StatusOr<v1::RunConfig> BuildRunConfig(const v1::JobSpec& in, const RankSite& site) {
  absl::StatusOr<v1::JobSpec> normalized = NormalizeJobSpec(in);
  if (!normalized.ok()) return normalized.status();
  const v1::JobSpec& spec = *normalized;
  if (spec.federated().num_rounds() > 0) {
    return SpecFieldError("federated", "federated jobs run on clients, not as ranks");
  }
  if (site.world_size != spec.resources().ranks()) {
    return absl::InvalidArgumentError(absl::StrCat("placement has ", site.world_size,
                                                   " ranks, spec.resources.ranks is ",
                                                   spec.resources().ranks()));
  }
  v1::RunConfig run;
  run.set_job_id(site.job_id);
  run.set_attempt(site.attempt);
  run.set_rank(site.rank);
  run.set_world_size(site.world_size);
  *run.mutable_model() = spec.model();
  *run.mutable_data() = spec.data();
  *run.mutable_optimizer() = spec.optimizer();
  *run.mutable_training() = spec.training();
  *run.mutable_zero() = spec.zero();
  *run.mutable_peft() = spec.peft();
  if (spec.has_task()) *run.mutable_task() = spec.task();

  const v1::OffloadSpec& offload = spec.offload();
  v1::RunOffload* out = run.mutable_offload();
  out->set_param_tier(offload.param_tier());
  out->set_optimizer_tier(offload.optimizer_tier());
  out->set_memory_budget_bytes(offload.memory_budget_bytes());
  out->set_storage_dtype(offload.storage_dtype());
  out->set_prefetch_blocks(offload.prefetch_blocks());
  out->set_gpu(-1);
  for (const auto& [tier, field] : {std::pair{offload.param_tier(), "offload.param_tier"},
                                    {offload.optimizer_tier(), "offload.optimizer_tier"}}) {
    if (tier == v1::TIER_NVME && site.nvme_dirs.empty()) {
      return SpecFieldError(field, "this worker has no NVMe paths (--nvme_paths)");
    }
  }
  if (offload.param_tier() == v1::TIER_NVME || offload.optimizer_tier() == v1::TIER_NVME) {
    for (const std::string& dir : site.nvme_dirs) out->add_dirs(dir);
  }
  if (spec.resources().gpus_per_rank() > 0) {  // Offloaded ZO (validated).
    if (site.gpu_indices.empty()) {
      return SpecFieldError("resources.gpus_per_rank", "the rank was placed without a GPU");
    }
    out->set_gpu(site.gpu_indices[0]);
  }

  const v1::CheckpointPolicy& policy = spec.checkpoint();
  v1::RunCheckpoint* ckpt = run.mutable_checkpoint();
  if (!policy.path().empty()) {
    ckpt->set_dir(policy.path());
  } else if (!site.job_dir.empty()) {
    ckpt->set_dir(site.job_dir + "/checkpoints");
  }
  ckpt->set_interval_steps(policy.interval_steps());
  ckpt->set_keep_last(policy.keep_last());
  ckpt->set_resume_from(policy.resume_from());
  if (policy.export_safetensors()) {
    if (ckpt->dir().empty()) {
      return SpecFieldError("checkpoint.export_safetensors", "needs a checkpoint directory");
    }
    ckpt->set_export_dir(ckpt->dir() + "/export");
  }
  ckpt->set_replay_log(site.replay_log);

  *run.mutable_rendezvous() = site.rendezvous;
  if (site.world_size > 1) {
    v1::RunRendezvous* meet = run.mutable_rendezvous();
    if (meet->coordinator().empty() && meet->dir().empty()) {
      if (policy.path().empty()) {
        return SpecFieldError(
            "checkpoint.path",
            "without a coordinator to meet through, multi-rank jobs need a shared "
            "checkpoint path");
      }
      meet->set_dir(policy.path() + "/rendezvous");
    }
    if (meet->prefix().empty()) meet->set_prefix(absl::StrCat(site.job_id, "/", site.attempt));
    if (!meet->has_collective_timeout()) meet->mutable_collective_timeout()->set_seconds(60);
  } else {
    run.clear_rendezvous();
  }
  return run;
}

}  // namespace strata
