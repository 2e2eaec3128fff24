// strata-train: runs one rank of a training job. Started by a worker as
// `strata-train --run_config=FILE` (a strata.v1.RunConfig in protobuf text format, written by
// the worker from the job's spec); run by hand, its flags describe a job the same way: they
// become a JobSpec and a placement, which go through the same validator and builder
// (services/jobspec) into the same RunConfig. With no flags it trains a small GPT-2-shaped
// model on the license texts in /usr/share/common-licenses with the byte tokenizer and reports
// the held-out loss against the corpus's unigram entropy (the best loss without context).
// Settings can come from a file: --flagfile=job.flags (one --flag=value per line).
// `strata-train generate --init_from=DIR --prompt=TEXT ...` prints text the model generates
// instead (services/trainer/generate_command.h).
#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/text_format.h"
#include "runtime/base/status_macros.h"
#include "runtime/data/tokenizer.h"
#include "runtime/model/model_config.h"
#include "runtime/peft/peft_checkpoint.h"
#include "services/common/main_util.h"
#include "services/common/report_channel.h"
#include "services/cli/job_config.h"
#include "services/jobspec/run_config_builder.h"
#include "services/trainer/eval_command.h"
#include "services/trainer/generate_command.h"
#include "services/trainer/run_training.h"

ABSL_FLAG(std::string, run_config, "",
          "A strata.v1.RunConfig (protobuf text format) to run; every other flag is then "
          "ignored except --print_run_config.");
ABSL_FLAG(bool, print_run_config, false,
          "Print the RunConfig the flags (or --run_config) describe, and exit.");
ABSL_FLAG(std::string, init_from, "", "Hugging Face checkpoint directory to start from.");
ABSL_FLAG(std::string, model_config, "",
          "config.json for a randomly initialized model (instead of --init_from).");
ABSL_FLAG(std::string, preset, "gpt2-tiny",
          "Built-in shape when neither --init_from nor --model_config is given: gpt2-tiny "
          "(4 layers, 256 wide) or llama-tiny.");
ABSL_FLAG(std::vector<std::string>, data, {},
          "Comma-separated training files. Default: every file in /usr/share/common-licenses.");
ABSL_FLAG(std::string, format, "auto", "Data format: auto, u16, u32, jsonl, text.");
ABSL_FLAG(std::string, task, "",
          "A task file (YAML, docs/tasks.md): train on its examples (and evaluate with its "
          "metrics) instead of --data; with `eval`, the task to score.");
ABSL_FLAG(int, shots, -1,
          "eval: also score in context with this many demonstrations from the training sample "
          "(-1: the task's num_demonstrations).");
ABSL_FLAG(std::vector<std::string>, task_config, {},
          "Overrides of the task file's keys, key=value (comma-separated), e.g. "
          "--task_config=train_path=sst2/train.jsonl,num_train=512.");
ABSL_FLAG(std::string, tokenizer, "",
          "A Hugging Face model directory (tokenizer.json, or vocab.json + merges.txt) or a "
          "tokenizer.json, for text data. Default: byte tokenizer.");
ABSL_FLAG(std::string, text_field, "", "JSONL field holding the text. Default: text.");
ABSL_FLAG(double, eval_fraction, 0.05, "Fraction of the corpus (its end) held out for eval.");
ABSL_FLAG(int, batch, 16, "Sequences per step.");
ABSL_FLAG(int, seq, 128, "Tokens per sequence.");
ABSL_FLAG(int64_t, steps, 300, "Optimizer steps.");
ABSL_FLAG(double, lr, 3e-3, "Peak learning rate.");
ABSL_FLAG(std::string, schedule, "cosine",
          "Learning-rate schedule after the warm-up: constant, linear or cosine.");
ABSL_FLAG(double, min_lr_ratio, 0.1,
          "linear and cosine decay to lr x this at the last step (ignored by constant).");
ABSL_FLAG(int64_t, warmup, 30, "Linear warm-up steps.");
ABSL_FLAG(double, weight_decay, 0.1, "Weight decay (not applied to norms and biases).");
ABSL_FLAG(double, grad_clip, 1.0, "AdamW: global gradient-norm clip; 0 disables.");
ABSL_FLAG(double, beta1, 0, "AdamW and ZO-Adam beta1; 0: 0.9.");
ABSL_FLAG(double, beta2, 0, "AdamW and ZO-Adam beta2; 0: 0.999.");
ABSL_FLAG(double, adam_eps, 0, "AdamW and ZO-Adam epsilon; 0: 1e-8.");
ABSL_FLAG(int64_t, eval_every, 100, "Evaluate every N steps (and at the end).");
ABSL_FLAG(int, eval_batches, 8, "Batches per evaluation.");
ABSL_FLAG(int64_t, log_every, 10, "Progress line every N steps.");
ABSL_FLAG(uint64_t, seed, 1,
          "Seed for initialization, data order and ZO perturbations (generate: for sampling).");
ABSL_FLAG(int, threads, 0, "Compute threads. 0: one per CPU.");
ABSL_FLAG(std::string, save_dir, "", "Write a Hugging Face checkpoint here at the end.");
ABSL_FLAG(std::string, optimizer, "adamw",
          "adamw (first-order) or zo (zeroth-order, MeZO family).");
ABSL_FLAG(std::string, zo_variant, "sgd", "ZO update: sgd, sign, momentum or adam.");
ABSL_FLAG(int, lora_r, 0,
          "Train LoRA adapters of this rank over the frozen model, with either optimizer "
          "(checkpoints and --save_dir hold a PEFT adapter directory). 0: train the weights.");
ABSL_FLAG(double, lora_alpha, 16, "LoRA alpha: the adapters' update is scaled by alpha / r.");
ABSL_FLAG(std::vector<std::string>, lora_targets, {},
          "LoRA target modules (e.g. q_proj,v_proj or all-linear). Default: the family's query "
          "and value projections (GPT-2: c_attn).");
ABSL_FLAG(int, prefix_tokens, 0,
          "Prefix tuning: train this many virtual tokens of keys and values per layer over the "
          "frozen model, with either optimizer (a PEFT PREFIX_TUNING directory). 0: none.");
ABSL_FLAG(std::string, merge_adapter, "",
          "Merge instead of training: fold the PEFT LoRA adapter directory here into the "
          "--init_from checkpoint and write the merged Hugging Face checkpoint to --save_dir.");
ABSL_FLAG(bool, prefix_init_from_activations, false,
          "Initialize the prefix from the model's keys and values for token ids drawn from "
          "--seed (MeZO's init_by_real_act) instead of standard normal values.");
ABSL_FLAG(double, eps, 1e-3, "ZO perturbation scale.");
ABSL_FLAG(int, num_perturbations, 1, "ZO perturbations per step (n-SPSA q).");
ABSL_FLAG(bool, one_sided, false, "ZO one-sided estimate (L(w+eps z) - L(w)) / eps.");
ABSL_FLAG(std::string, distribution, "gaussian", "ZO noise: gaussian or rademacher.");
ABSL_FLAG(double, sparse_quantile, 0,
          "Sparse-MeZO: perturb weights below this magnitude "
          "quantile of each tensor (0 disables).");
ABSL_FLAG(double, scalar_clip, 0, "Clip the ZO projected gradient to this magnitude (0: off).");
ABSL_FLAG(double, momentum, 0.9, "ZO momentum coefficient (--zo_variant=momentum).");
ABSL_FLAG(std::string, checkpoint_dir, "",
          "Checkpoints (and the ZO step log) go here; an existing directory is resumed exactly. "
          "Data-parallel FO ranks each use DIR/rank<R>.");
ABSL_FLAG(int64_t, checkpoint_every, 0, "Checkpoint every N steps (and at the end).");
ABSL_FLAG(int, keep_last, 0, "Checkpoints kept (the newest); 0: 3.");
ABSL_FLAG(std::string, resume_from, "",
          "Start from this checkpoint (a ckpt-<step> directory another run wrote) when "
          "--checkpoint_dir holds none yet.");
ABSL_FLAG(std::vector<std::string>, offload_dirs, {},
          "ZO: stream the transformer blocks from these NVMe directories (sgd and sign).");
ABSL_FLAG(int64_t, memory_budget_bytes, 0,
          "ZO offload: bound on the working set (resident tensors + perturbation buffers + "
          "slots).");
ABSL_FLAG(int, prefetch_blocks, 2, "ZO offload: blocks read ahead of the one computing.");
ABSL_FLAG(bool, offload_bf16, false, "ZO offload: store blocks as bf16 (fp32 compute).");
ABSL_FLAG(std::string, offload_tier, "nvme",
          "ZO offload tier: nvme (needs --offload_dirs) or cpu (blocks in pinned host memory).");
ABSL_FLAG(std::string, replay_log, "",
          "ZO: a step log (e.g. the coordinator's copy) to replay from the initial weights when "
          "--checkpoint_dir holds no checkpoint yet, so a restarted run loses no step.");
ABSL_FLAG(int, report_fd, -1,
          "Write typed reports (strata.v1.RankReport records: progress, evaluations, ZO step "
          "records, checkpoints, the final status) to this open file descriptor; the worker "
          "daemon passes a pipe. -1: none.");
ABSL_FLAG(int, world_size, 1,
          "FO: data-parallel ranks (each runs this command with its --rank); they meet through "
          "--rendezvous_dir and all-reduce over TCP (Gloo).");
ABSL_FLAG(int, rank, 0, "FO data parallel: this process's rank in [0, --world_size).");
ABSL_FLAG(std::string, rendezvous_dir, "",
          "FO data parallel: a directory every rank can reach, for the rendezvous files.");
ABSL_FLAG(std::string, rendezvous_prefix, "strata-train",
          "FO data parallel: key prefix of this run in --rendezvous_dir (one per run/attempt).");
ABSL_FLAG(std::string, rendezvous_host, "127.0.0.1",
          "FO data parallel: the address this rank listens on for its peers.");
ABSL_FLAG(std::vector<std::string>, optimizer_state_dirs, {},
          "FO: keep the AdamW state (m, v) on NVMe in these directories, streamed in sub-groups "
          "(checkpoints stream it too).");
ABSL_FLAG(std::vector<std::string>, param_offload_dirs, {},
          "FO at --zero_stage=3: keep this rank's weight shard on NVMe in these directories "
          "(read before each block's gather, streamed through the AdamW pass).");
ABSL_FLAG(bool, bf16_compute, false,
          "FO at --zero_stage=3: forward and backward read a bf16 copy of the weights that AdamW "
          "writes beside the fp32 masters (half the bytes gathered).");
ABSL_FLAG(int, zero_stage, 0,
          "FO: ZeRO stage 0 (replicated AdamW state), 1 (partitioned state), 2 (+ reduce-scattered "
          "gradients) or 3 (+ partitioned weights, gathered block by block; with one process, "
          "the way to --param_offload_dirs).");
ABSL_FLAG(absl::Duration, collective_timeout, absl::Seconds(60),
          "FO data parallel: a collective that waits longer for a peer fails the run.");
ABSL_FLAG(int, offload_gpu, -1,
          "ZO offload: run the blocks on this CUDA device (-1: on the CPU; needs a CUDA build).");

namespace strata {

// Set by SIGTERM: stop after the current step, checkpointed.
std::atomic<bool> g_stop_requested{false};

namespace {

constexpr char kUsage[] =
    "Trains a transformer on this machine (first-order AdamW or zeroth-order MeZO) and saves a "
    "Hugging Face checkpoint.\n\nUsage: strata-train --run_config=FILE | [--data=FILES] "
    "[--tokenizer=tokenizer.json] [--init_from=DIR | --model_config=config.json | "
    "--preset=gpt2-tiny] [--steps=N] [--save_dir=DIR]\n       strata-train --merge_adapter=DIR "
    "--init_from=DIR --save_dir=DIR\n       strata-train generate --init_from=DIR [--adapter=DIR] "
    "--prompt=TEXT [--max_new_tokens=N] [--temperature=T [--top_k=K] [--top_p=P] [--seed=S]] "
    "[--stop=STRINGS]\n       strata-train eval --init_from=DIR [--adapter=DIR] --task=FILE "
    "[--task_config=KEY=VALUE,...] [--shots=K]";

std::vector<std::string> DefaultCorpus() {
  std::vector<std::string> files;
  const std::string dir = "/usr/share/common-licenses";
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.' && e->d_type == DT_REG) files.push_back(dir + "/" + e->d_name);
    }
    closedir(d);
  }
  std::sort(files.begin(), files.end());
  return files;
}

absl::StatusOr<ModelConfig> PresetConfig(const std::string& name, int vocab_size) {
  ModelConfig c;
  c.vocab_size = vocab_size;
  c.max_seq_len = 256;
  c.n_layer = 4;
  c.d_model = 256;
  c.n_head = 8;
  if (name == "gpt2-tiny") {
    c.family = ModelFamily::kGpt2;
    c.n_kv_head = 8;
    c.d_ff = 1024;
  } else if (name == "llama-tiny") {
    c.family = ModelFamily::kLlama;
    c.n_kv_head = 4;
    c.d_ff = 704;
    c.norm_eps = 1e-6f;
    c.tie_embeddings = false;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--preset=", name, " is not gpt2-tiny or llama-tiny"));
  }
  return c;
}

template <typename Enum>
absl::StatusOr<Enum> Choose(const std::string& flag, const std::string& value,
                            std::initializer_list<std::pair<const char*, Enum>> choices) {
  std::vector<std::string> names;
  for (const auto& [name, e] : choices) {
    if (value == name) return e;
    names.push_back(name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, "=", value, " is not ", absl::StrJoin(names, ", ")));
}

// The job the flags describe, and where its one rank (or --rank of --world_size) runs.
absl::StatusOr<v1::RunConfig> RunConfigFromFlags() {
  v1::JobSpec spec;
  RankSite site;
  spec.set_name("strata-train");
  site.job_id = "local";
  // Model.
  v1::ModelSpec* model = spec.mutable_model();
  if (!absl::GetFlag(FLAGS_init_from).empty()) {
    model->set_checkpoint_path(absl::GetFlag(FLAGS_init_from));
  } else if (!absl::GetFlag(FLAGS_model_config).empty()) {
    model->set_config_path(absl::GetFlag(FLAGS_model_config));
  } else {
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer,
                            LoadTokenizer(absl::GetFlag(FLAGS_tokenizer)));
    STRATA_ASSIGN_OR_RETURN(ModelConfig preset,
                            PresetConfig(absl::GetFlag(FLAGS_preset), tokenizer->vocab_size()));
    model->set_config_json(ToHfConfigJson(preset));
  }
  // Data: a task's examples, or a corpus.
  v1::DataSpec* data = spec.mutable_data();
  if (const std::string task = absl::GetFlag(FLAGS_task); !task.empty()) {
    if (!absl::GetFlag(FLAGS_data).empty() || absl::GetFlag(FLAGS_format) != "auto" ||
        !absl::GetFlag(FLAGS_text_field).empty()) {
      return absl::InvalidArgumentError(
          "--task reads its examples from the task file: --data, --format and --text_field do "
          "not apply");
    }
    STRATA_ASSIGN_OR_RETURN(*spec.mutable_task(),
                            LoadTaskConfig(task, absl::GetFlag(FLAGS_task_config)));
  } else {
    if (!absl::GetFlag(FLAGS_task_config).empty()) {
      return absl::InvalidArgumentError("--task_config needs --task");
    }
    std::vector<std::string> files = absl::GetFlag(FLAGS_data);
    if (files.empty()) files = DefaultCorpus();
    for (const std::string& f : files) data->add_train_paths(f);
    STRATA_ASSIGN_OR_RETURN(v1::DataFormat format,
                            Choose<v1::DataFormat>("format", absl::GetFlag(FLAGS_format),
                                                   {{"auto", v1::DATA_FORMAT_UNSPECIFIED},
                                                    {"u16", v1::DATA_FORMAT_TOKENS_U16},
                                                    {"u32", v1::DATA_FORMAT_TOKENS_U32},
                                                    {"jsonl", v1::DATA_FORMAT_JSONL},
                                                    {"text", v1::DATA_FORMAT_TEXT}}));
    data->set_format(format);
    data->set_text_field(absl::GetFlag(FLAGS_text_field));
    data->set_eval_batches(absl::GetFlag(FLAGS_eval_batches));
    data->set_eval_fraction(absl::GetFlag(FLAGS_eval_fraction));
  }
  data->set_tokenizer_path(absl::GetFlag(FLAGS_tokenizer));
  data->set_batch_size(absl::GetFlag(FLAGS_batch));
  data->set_seq_len(absl::GetFlag(FLAGS_seq));
  // Training.
  v1::TrainingSpec* training = spec.mutable_training();
  training->set_max_steps(absl::GetFlag(FLAGS_steps));
  training->set_eval_interval(absl::GetFlag(FLAGS_eval_every));
  training->set_log_interval(absl::GetFlag(FLAGS_log_every));
  training->set_seed(absl::GetFlag(FLAGS_seed));
  training->set_threads(absl::GetFlag(FLAGS_threads));
  // Adapters.
  if (absl::GetFlag(FLAGS_lora_r) != 0) {
    v1::LoraSpec* lora = spec.mutable_peft()->mutable_lora();
    lora->set_r(absl::GetFlag(FLAGS_lora_r));
    lora->set_alpha(absl::GetFlag(FLAGS_lora_alpha));
    for (const std::string& t : absl::GetFlag(FLAGS_lora_targets)) lora->add_target_modules(t);
  }
  if (absl::GetFlag(FLAGS_prefix_init_from_activations) &&
      absl::GetFlag(FLAGS_prefix_tokens) == 0) {
    return absl::InvalidArgumentError("--prefix_init_from_activations needs --prefix_tokens");
  }
  if (absl::GetFlag(FLAGS_prefix_tokens) != 0) {
    v1::PrefixSpec* prefix = spec.mutable_peft()->mutable_prefix();
    prefix->set_num_tokens(absl::GetFlag(FLAGS_prefix_tokens));
    prefix->set_init_from_activations(absl::GetFlag(FLAGS_prefix_init_from_activations));
  }
  // Optimizer and schedule.
  v1::OptimizerSpec* opt = spec.mutable_optimizer();
  STRATA_ASSIGN_OR_RETURN(v1::LrScheduleKind kind,
                          Choose<v1::LrScheduleKind>("schedule", absl::GetFlag(FLAGS_schedule),
                                                     {{"constant", v1::LR_SCHEDULE_KIND_CONSTANT},
                                                      {"linear", v1::LR_SCHEDULE_KIND_LINEAR},
                                                      {"cosine", v1::LR_SCHEDULE_KIND_COSINE}}));
  opt->mutable_schedule()->set_kind(kind);
  opt->mutable_schedule()->set_warmup_steps(absl::GetFlag(FLAGS_warmup));
  if (kind != v1::LR_SCHEDULE_KIND_CONSTANT) {
    opt->mutable_schedule()->set_min_lr_ratio(absl::GetFlag(FLAGS_min_lr_ratio));
  }
  const std::string optimizer = absl::GetFlag(FLAGS_optimizer);
  std::vector<std::string> nvme_dirs;
  if (optimizer == "zo") {
    v1::ZerothOrderSpec* zo = opt->mutable_zeroth_order();
    STRATA_ASSIGN_OR_RETURN(v1::ZoVariant variant,
                            Choose<v1::ZoVariant>("zo_variant", absl::GetFlag(FLAGS_zo_variant),
                                                  {{"sgd", v1::ZO_VARIANT_SGD},
                                                   {"sign", v1::ZO_VARIANT_SGD_SIGN},
                                                   {"momentum", v1::ZO_VARIANT_SGD_MOMENTUM},
                                                   {"adam", v1::ZO_VARIANT_ADAM}}));
    zo->set_variant(variant);
    zo->set_estimator(absl::GetFlag(FLAGS_one_sided) ? v1::ZO_ESTIMATOR_ONE_SIDED
                                                     : v1::ZO_ESTIMATOR_TWO_SIDED);
    STRATA_ASSIGN_OR_RETURN(
        v1::ZoDistribution distribution,
        Choose<v1::ZoDistribution>("distribution", absl::GetFlag(FLAGS_distribution),
                                   {{"gaussian", v1::ZO_DISTRIBUTION_GAUSSIAN},
                                    {"rademacher", v1::ZO_DISTRIBUTION_RADEMACHER}}));
    zo->set_distribution(distribution);
    zo->set_lr(absl::GetFlag(FLAGS_lr));
    zo->set_epsilon(absl::GetFlag(FLAGS_eps));
    zo->set_num_perturbations(absl::GetFlag(FLAGS_num_perturbations));
    zo->set_weight_decay(absl::GetFlag(FLAGS_weight_decay));
    if (variant == v1::ZO_VARIANT_SGD_MOMENTUM) zo->set_momentum(absl::GetFlag(FLAGS_momentum));
    if (variant == v1::ZO_VARIANT_ADAM) {
      zo->set_beta1(absl::GetFlag(FLAGS_beta1));
      zo->set_beta2(absl::GetFlag(FLAGS_beta2));
      zo->set_adam_epsilon(absl::GetFlag(FLAGS_adam_eps));
    }
    zo->set_sparse_quantile(absl::GetFlag(FLAGS_sparse_quantile));
    zo->set_scalar_clip(absl::GetFlag(FLAGS_scalar_clip));
    // Offloaded ZO.
    v1::OffloadSpec* offload = spec.mutable_offload();
    STRATA_ASSIGN_OR_RETURN(v1::Tier tier,
                            Choose<v1::Tier>("offload_tier", absl::GetFlag(FLAGS_offload_tier),
                                             {{"nvme", v1::TIER_NVME}, {"cpu", v1::TIER_CPU}}));
    const bool offloaded = !absl::GetFlag(FLAGS_offload_dirs).empty() || tier == v1::TIER_CPU;
    if (offloaded) {
      offload->set_param_tier(tier);
      nvme_dirs = absl::GetFlag(FLAGS_offload_dirs);
      offload->set_memory_budget_bytes(absl::GetFlag(FLAGS_memory_budget_bytes));
      offload->set_prefetch_blocks(absl::GetFlag(FLAGS_prefetch_blocks));
      if (absl::GetFlag(FLAGS_offload_bf16)) offload->set_storage_dtype(v1::DTYPE_BF16);
      if (absl::GetFlag(FLAGS_offload_gpu) >= 0) {
        spec.mutable_resources()->set_gpus_per_rank(1);
        site.gpu_indices = {absl::GetFlag(FLAGS_offload_gpu)};
      }
    }
    site.replay_log = absl::GetFlag(FLAGS_replay_log);
  } else if (optimizer == "adamw") {
    v1::AdamWSpec* adam = opt->mutable_adamw();
    adam->set_lr(absl::GetFlag(FLAGS_lr));
    adam->set_beta1(absl::GetFlag(FLAGS_beta1));
    adam->set_beta2(absl::GetFlag(FLAGS_beta2));
    adam->set_epsilon(absl::GetFlag(FLAGS_adam_eps));
    adam->set_weight_decay(absl::GetFlag(FLAGS_weight_decay));
    adam->set_grad_clip_norm(absl::GetFlag(FLAGS_grad_clip));
    spec.mutable_zero()->set_stage(absl::GetFlag(FLAGS_zero_stage));
    if (absl::GetFlag(FLAGS_bf16_compute)) spec.mutable_zero()->set_compute_dtype(v1::DTYPE_BF16);
    const std::vector<std::string> state = absl::GetFlag(FLAGS_optimizer_state_dirs);
    const std::vector<std::string> params = absl::GetFlag(FLAGS_param_offload_dirs);
    if (!state.empty() && !params.empty() && state != params) {
      return absl::InvalidArgumentError(
          "--optimizer_state_dirs and --param_offload_dirs: the weight shard and the AdamW state "
          "are offloaded to the same directories: give the same list for both");
    }
    if (!state.empty()) spec.mutable_offload()->set_optimizer_tier(v1::TIER_NVME);
    if (!params.empty()) spec.mutable_offload()->set_param_tier(v1::TIER_NVME);
    nvme_dirs = !params.empty() ? params : state;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--optimizer=", optimizer, " is not adamw or zo"));
  }
  site.nvme_dirs = nvme_dirs;
  // Checkpoints.
  v1::CheckpointPolicy* ckpt = spec.mutable_checkpoint();
  ckpt->set_path(absl::GetFlag(FLAGS_checkpoint_dir));
  ckpt->set_interval_steps(absl::GetFlag(FLAGS_checkpoint_every));
  ckpt->set_keep_last(absl::GetFlag(FLAGS_keep_last));
  ckpt->set_resume_from(absl::GetFlag(FLAGS_resume_from));
  // Ranks.
  site.world_size = absl::GetFlag(FLAGS_world_size);
  site.rank = absl::GetFlag(FLAGS_rank);
  if (site.world_size < 1 || site.rank < 0 || site.rank >= site.world_size) {
    return absl::InvalidArgumentError("--rank must be in [0, --world_size)");
  }
  spec.mutable_resources()->set_ranks(site.world_size);
  if (site.world_size > 1) {
    if (absl::GetFlag(FLAGS_rendezvous_dir).empty()) {
      return absl::InvalidArgumentError("--world_size > 1 needs --rendezvous_dir");
    }
    site.rendezvous.set_dir(absl::GetFlag(FLAGS_rendezvous_dir));
    site.rendezvous.set_prefix(absl::GetFlag(FLAGS_rendezvous_prefix));
    site.rendezvous.set_host(absl::GetFlag(FLAGS_rendezvous_host));
    const absl::Duration timeout = absl::GetFlag(FLAGS_collective_timeout);
    site.rendezvous.mutable_collective_timeout()->set_seconds(absl::ToInt64Seconds(timeout));
    site.rendezvous.mutable_collective_timeout()->set_nanos(static_cast<int32_t>(
        absl::ToInt64Nanoseconds(timeout - absl::Seconds(absl::ToInt64Seconds(timeout)))));
  }
  STRATA_ASSIGN_OR_RETURN(v1::RunConfig run, BuildRunConfig(spec, site));
  // --save_dir names the export directly.
  run.mutable_checkpoint()->set_export_dir(absl::GetFlag(FLAGS_save_dir));
  // --threads=0 keeps its meaning (a thread per CPU this process may use) rather than the one
  // core a job rank reserves by default.
  if (absl::GetFlag(FLAGS_threads) == 0) run.mutable_training()->set_threads(0);
  return run;
}

absl::StatusOr<v1::RunConfig> ReadRunConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("--run_config=", path, ": cannot read it"));
  std::stringstream text;
  text << in.rdbuf();
  v1::RunConfig run;
  if (!google::protobuf::TextFormat::ParseFromString(text.str(), &run)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--run_config=", path, ": not a strata.v1.RunConfig in text format"));
  }
  return run;
}

absl::Status Run() {
  STRATA_RETURN_IF_ERROR(RefuseGenerateFlags());
  if (const std::string adapter = absl::GetFlag(FLAGS_merge_adapter); !adapter.empty()) {
    const std::string base = absl::GetFlag(FLAGS_init_from), out = absl::GetFlag(FLAGS_save_dir);
    if (base.empty() || out.empty()) {
      return absl::InvalidArgumentError("--merge_adapter needs --init_from and --save_dir");
    }
    STRATA_RETURN_IF_ERROR(MergeLoraCheckpoint(base, adapter, out));
    std::printf("merged %s into %s: wrote %s\n", adapter.c_str(), base.c_str(), out.c_str());
    return absl::OkStatus();
  }
  v1::RunConfig run;
  if (const std::string path = absl::GetFlag(FLAGS_run_config); !path.empty()) {
    STRATA_ASSIGN_OR_RETURN(run, ReadRunConfig(path));
  } else {
    STRATA_ASSIGN_OR_RETURN(run, RunConfigFromFlags());
  }
  if (absl::GetFlag(FLAGS_print_run_config)) {
    std::string text;
    google::protobuf::TextFormat::PrintToString(run, &text);
    std::printf("%s", text.c_str());
    return absl::OkStatus();
  }
  TrainingOutput out;
  out.log = [](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };
  if (const int fd = absl::GetFlag(FLAGS_report_fd); fd >= 0) {
    out.report = [fd](const v1::RankReport& report) {
      // The worker reading the pipe is gone when this fails: training goes on (a stop order or
      // the parent-death signal ends it), its log says so once.
      static bool warned = false;
      if (absl::Status s = WriteReport(fd, report); !s.ok() && !warned) {
        warned = true;
        std::fprintf(stderr, "strata-train: reports are lost: %s\n", s.ToString().c_str());
      }
    };
  }
  out.stop_requested = &g_stop_requested;
  const absl::Status status = RunTraining(run, out);
  if (out.report) {
    v1::RankReport final;
    if (!status.ok())
      final.mutable_final()->set_error(status.ToString());
    else
      final.mutable_final();
    out.report(final);
  }
  return status;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  const std::vector<std::string> args = strata::InitMain(argc, argv, strata::kUsage);
  // Commands, by the first positional word; none trains.
  if (!args.empty() && args[0] == "generate") {
    const strata::GenerateShared shared{absl::GetFlag(FLAGS_init_from),
                                        absl::GetFlag(FLAGS_tokenizer), absl::GetFlag(FLAGS_seed),
                                        absl::GetFlag(FLAGS_threads)};
    return strata::ExitCode("strata-train", strata::RunGenerate(args, shared, stdout));
  }
  if (!args.empty() && args[0] == "eval") {
    strata::EvalShared shared;
    shared.init_from = absl::GetFlag(FLAGS_init_from);
    shared.adapter = absl::GetFlag(FLAGS_adapter);
    shared.tokenizer = absl::GetFlag(FLAGS_tokenizer);
    shared.task = absl::GetFlag(FLAGS_task);
    shared.task_config = absl::GetFlag(FLAGS_task_config);
    shared.seed = absl::GetFlag(FLAGS_seed);
    shared.batch = absl::GetFlag(FLAGS_batch);
    // --seq bounds eval only when given: by default rows may use every position the model has.
    const absl::CommandLineFlag& seq_flag = absl::GetFlagReflectionHandle(FLAGS_seq);
    shared.seq = seq_flag.CurrentValue() != seq_flag.DefaultValue() ? absl::GetFlag(FLAGS_seq) : 0;
    shared.threads = absl::GetFlag(FLAGS_threads);
    shared.shots = absl::GetFlag(FLAGS_shots);
    return strata::ExitCode("strata-train", strata::RunEval(args, shared, stdout));
  }
  if (!args.empty()) {
    std::fprintf(stderr, "strata-train: unexpected argument \"%s\" (see --help)\n",
                 args[0].c_str());
    return 2;
  }
  // SIGTERM asks the run to stop gracefully: after the current step, checkpointed.
  {
    struct sigaction action = {};
    action.sa_handler = [](int) { strata::g_stop_requested.store(true); };
    sigaction(SIGTERM, &action, nullptr);
  }
  if (absl::Status status = strata::Run(); !status.ok()) {
    std::fprintf(stderr, "strata-train: %s\n", status.ToString().c_str());
    return absl::IsCancelled(status) ? 3 : 1;
  }
  return 0;
}
