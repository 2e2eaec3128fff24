// See run_training.h.
#include "services/trainer/run_training.h"

#include <cmath>
#include <cstdlib>
#include <memory>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/time_util.h"
#include "runtime/base/status_macros.h"
#include "runtime/data/chat_messages.h"
#include "runtime/data/dataset.h"
#include "runtime/data/tokenizer.h"
#include "runtime/dist/communicator.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/peft/trainable_adapters.h"
#include "services/common/adapter_spec.h"
#include "services/common/coordinator_store.h"
#include "services/common/tls.h"
#include "services/trainer/resume_from.h"
#include "services/trainer/task_loading.h"

namespace strata {
namespace {

using google::protobuf::util::TimeUtil;

absl::StatusOr<LrSchedule> ScheduleFor(const v1::RunConfig& run, double lr) {
  const v1::LrSchedule& s = run.optimizer().schedule();
  LrSchedule schedule;
  switch (s.kind()) {
    case v1::LR_SCHEDULE_KIND_CONSTANT:
      schedule.kind = LrSchedule::Kind::kConstant;
      break;
    case v1::LR_SCHEDULE_KIND_LINEAR:
      schedule.kind = LrSchedule::Kind::kLinear;
      break;
    case v1::LR_SCHEDULE_KIND_COSINE:
      schedule.kind = LrSchedule::Kind::kCosine;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("run config: optimizer.schedule.kind ", s.kind(), " is not resolved"));
  }
  schedule.lr = lr;
  schedule.warmup_steps = s.warmup_steps();
  schedule.min_lr_ratio = s.min_lr_ratio();
  schedule.total_steps = run.training().max_steps();
  STRATA_RETURN_IF_ERROR(schedule.Validate());
  return schedule;
}

bool ZoOffloaded(const v1::RunConfig& run) {
  return run.optimizer().has_zeroth_order() && (run.offload().param_tier() == v1::TIER_CPU ||
                                                run.offload().param_tier() == v1::TIER_NVME);
}

// Offloaded ZO (without Sparse-MeZO) builds the blocks straight on their tier, from the seed or
// from the checkpoint, so the model's arena never holds them.
bool StreamOffloadedWeights(const v1::RunConfig& run) {
  return ZoOffloaded(run) && run.optimizer().zeroth_order().sparse_quantile() == 0;
}

// FO at ZeRO stage 3 (one rank or several): each rank initializes only its shard.
bool ShardedWeights(const v1::RunConfig& run) {
  return run.optimizer().has_adamw() && run.zero().stage() == 3;
}

absl::StatusOr<CorpusFormat> FormatFor(v1::DataFormat format) {
  switch (format) {
    case v1::DATA_FORMAT_UNSPECIFIED:
      return CorpusFormat::kAuto;
    case v1::DATA_FORMAT_TOKENS_U16:
      return CorpusFormat::kTokensU16;
    case v1::DATA_FORMAT_TOKENS_U32:
      return CorpusFormat::kTokensU32;
    case v1::DATA_FORMAT_JSONL:
      return CorpusFormat::kJsonl;
    case v1::DATA_FORMAT_TEXT:
      return CorpusFormat::kText;
    default:
      return absl::InvalidArgumentError(absl::StrCat("spec.data.format: ", format, " is unknown"));
  }
}

absl::Status CheckFamily(const v1::RunConfig& run, const ModelConfig& config) {
  const v1::ModelFamily want = run.model().family();
  if (want == v1::MODEL_FAMILY_UNSPECIFIED) return absl::OkStatus();
  static const absl::flat_hash_map<ModelFamily, v1::ModelFamily> kFamilies = {
      {ModelFamily::kGpt2, v1::MODEL_FAMILY_GPT2},
      {ModelFamily::kLlama, v1::MODEL_FAMILY_LLAMA},
      {ModelFamily::kOpt, v1::MODEL_FAMILY_OPT},
      {ModelFamily::kQwen2, v1::MODEL_FAMILY_QWEN2},
      {ModelFamily::kQwen3, v1::MODEL_FAMILY_QWEN3},
      {ModelFamily::kMistral, v1::MODEL_FAMILY_MISTRAL}};
  if (want != kFamilies.at(config.family)) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.model.family: ", v1::ModelFamily_Name(want),
                     " but the model's config.json is ", ModelFamilyName(config.family)));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ConfigFor(const v1::ModelSpec& model) {
  switch (model.source_case()) {
    case v1::ModelSpec::kCheckpointPath:
      return ReadHfConfig(model.checkpoint_path() + "/config.json");
    case v1::ModelSpec::kConfigPath:
      return ReadHfConfig(model.config_path());
    case v1::ModelSpec::kConfigJson:
      return ParseHfConfig(model.config_json(), "spec.model.config_json");
    default:
      return absl::InvalidArgumentError("spec.model: no source");
  }
}

// Text tokenized with `tokenizer` holds only ids the model has.
absl::Status CheckTokenizerFits(const Tokenizer& tokenizer, const ModelConfig& config) {
  if (config.vocab_size >= tokenizer.vocab_size()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "the model's vocabulary (%d) is smaller than the tokenizer's (%d): text tokenized with "
      "it could hold ids the model does not have",
      config.vocab_size, tokenizer.vocab_size()));
}

// The trainers' events as RankReports through `report` (nothing when it is null).
TrainEvents ReportingEvents(const std::function<void(const v1::RankReport&)>& report) {
  TrainEvents events;
  if (!report) return events;
  events.on_progress = [report](const TrainProgress& p) {
    v1::RankReport r;
    v1::JobProgress* out = r.mutable_progress();
    out->set_step(p.step);
    out->set_max_steps(p.max_steps);
    out->set_loss(p.loss);
    out->set_lr(p.lr);
    out->set_tokens_per_second(p.tokens_per_second);
    out->set_tokens_total(p.tokens_total);
    out->set_offload_read_bytes(p.offload_read_bytes);
    out->set_offload_write_bytes(p.offload_write_bytes);
    out->set_eval_loss(std::nan(""));
    *out->mutable_time() = TimeUtil::GetCurrentTime();
    report(r);
  };
  events.on_eval = [report](int64_t step, const EvalResult& eval) {
    v1::RankReport r;
    r.mutable_eval()->set_step(step);
    r.mutable_eval()->set_loss(eval.loss);
    for (const auto& [name, value] : eval.metrics) (*r.mutable_eval()->mutable_metrics())[name] = value;
    report(r);
  };
  events.on_checkpoint = [report](int64_t step, const std::string& dir) {
    v1::RankReport r;
    r.mutable_checkpoint()->set_step(step);
    r.mutable_checkpoint()->set_path(dir);
    *r.mutable_checkpoint()->mutable_time() = TimeUtil::GetCurrentTime();
    report(r);
  };
  return events;
}

}  // namespace

absl::StatusOr<ZoTrainerOptions> ZoOptionsFor(const v1::RunConfig& run) {
  if (!run.optimizer().has_zeroth_order()) {
    return absl::InvalidArgumentError("run config: not a zeroth-order run");
  }
  const v1::ZerothOrderSpec& spec = run.optimizer().zeroth_order();
  ZoTrainerOptions o;
  switch (spec.variant()) {
    case v1::ZO_VARIANT_SGD:
      o.zo.variant = zo::ZoVariant::kSgd;
      break;
    case v1::ZO_VARIANT_SGD_SIGN:
      o.zo.variant = zo::ZoVariant::kSign;
      break;
    case v1::ZO_VARIANT_SGD_MOMENTUM:
      o.zo.variant = zo::ZoVariant::kMomentum;
      break;
    case v1::ZO_VARIANT_ADAM:
      o.zo.variant = zo::ZoVariant::kAdam;
      break;
    default:
      return absl::InvalidArgumentError("run config: optimizer.zeroth_order.variant unresolved");
  }
  if (spec.estimator() == v1::ZO_ESTIMATOR_UNSPECIFIED ||
      spec.distribution() == v1::ZO_DISTRIBUTION_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        "run config: optimizer.zeroth_order.estimator and distribution must be resolved");
  }
  o.zo.one_sided = spec.estimator() == v1::ZO_ESTIMATOR_ONE_SIDED;
  o.zo.distribution = spec.distribution() == v1::ZO_DISTRIBUTION_RADEMACHER
                          ? zo::Distribution::kRademacher
                          : zo::Distribution::kGaussian;
  o.zo.eps = static_cast<float>(spec.epsilon());
  o.zo.num_perturbations = spec.num_perturbations();
  o.zo.weight_decay = static_cast<float>(spec.weight_decay());
  o.zo.momentum = static_cast<float>(spec.momentum());
  o.zo.beta1 = static_cast<float>(spec.beta1());
  o.zo.beta2 = static_cast<float>(spec.beta2());
  o.zo.adam_eps = static_cast<float>(spec.adam_epsilon());
  o.zo.sparse_quantile = static_cast<float>(spec.sparse_quantile());
  o.zo.scalar_clip = static_cast<float>(spec.scalar_clip());
  o.zo.skip_nonfinite = !spec.keep_nonfinite_steps();
  o.zo.seed = run.training().seed();
  o.batch = run.data().batch_size();
  o.seq = run.data().seq_len();
  o.steps = run.training().max_steps();
  STRATA_ASSIGN_OR_RETURN(o.lr, ScheduleFor(run, spec.lr()));
  o.eval_every = run.training().eval_interval();
  o.eval_batches = run.data().eval_batches();
  o.log_every = run.training().log_interval();
  o.data_seed = run.data().shuffle_seed();
  o.checkpoint_dir = run.checkpoint().dir();
  o.attempt = run.attempt();  // 0 outside the service: no fencing.
  o.job_id = run.job_id();
  o.checkpoint_every = run.checkpoint().interval_steps();
  o.keep_checkpoints = run.checkpoint().keep_last();
  o.replay_log = run.checkpoint().replay_log();
  if (ZoOffloaded(run)) {
    const v1::RunOffload& offload = run.offload();
    o.offload = OffloadedZo::Options();
    o.offload->tier =
        offload.param_tier() == v1::TIER_CPU ? OffloadedZo::Tier::kCpu : OffloadedZo::Tier::kNvme;
    o.offload->nvme_paths.assign(offload.dirs().begin(), offload.dirs().end());
    o.offload->memory_budget_bytes = offload.memory_budget_bytes();
    o.offload->prefetch_blocks = offload.prefetch_blocks();
    o.offload->bf16_storage = offload.storage_dtype() == v1::DTYPE_BF16;
    o.offload->gpu_device = offload.gpu();
  }
  return o;
}

// The adapters run.peft asks for (null without), from the training seed, announced in the log.
absl::StatusOr<std::unique_ptr<TrainableAdapters>> LoggedAdapters(
    const v1::RunConfig& run, Transformer& model,
    const std::function<void(const std::string&)>& log) {
  if (!run.peft().has_lora() && !run.peft().has_prefix()) return nullptr;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<TrainableAdapters> adapters,
                          AdaptersForSpec(run.peft(), model, run.training().seed()));
  log(absl::StrFormat("%s (%.3f%% of the model)", adapters->Describe(),
                      100.0 * adapters->NumElements() / model.config().NumParameters()));
  return adapters;
}

absl::StatusOr<FoTrainerOptions> FoOptionsFor(const v1::RunConfig& run) {
  if (!run.optimizer().has_adamw()) return absl::InvalidArgumentError("run config: not adamw");
  const v1::AdamWSpec& adam = run.optimizer().adamw();
  FoTrainerOptions o;
  o.batch = run.data().batch_size();
  o.seq = run.data().seq_len();
  o.steps = run.training().max_steps();
  STRATA_ASSIGN_OR_RETURN(o.lr, ScheduleFor(run, adam.lr()));
  o.weight_decay = static_cast<float>(adam.weight_decay());
  o.beta1 = static_cast<float>(adam.beta1());
  o.beta2 = static_cast<float>(adam.beta2());
  o.adam_eps = static_cast<float>(adam.epsilon());
  o.grad_clip = static_cast<float>(adam.grad_clip_norm());
  o.eval_every = run.training().eval_interval();
  o.eval_batches = run.data().eval_batches();
  o.log_every = run.training().log_interval();
  o.seed = run.data().shuffle_seed();
  o.save_dir = run.checkpoint().export_dir();
  o.checkpoint_dir = run.checkpoint().dir();
  o.attempt = run.attempt();  // 0 outside the service: no fencing.
  o.job_id = run.job_id();
  o.checkpoint_every = run.checkpoint().interval_steps();
  o.keep_checkpoints = run.checkpoint().keep_last();
  o.zero_stage = run.zero().stage();
  o.bf16_compute = run.zero().compute_dtype() == v1::DTYPE_BF16;
  const std::vector<std::string> dirs(run.offload().dirs().begin(), run.offload().dirs().end());
  if (run.offload().optimizer_tier() == v1::TIER_NVME) o.optimizer_state_dirs = dirs;
  if (run.offload().param_tier() == v1::TIER_NVME) o.param_offload_dirs = dirs;
  if (ShardedWeights(run) && !run.model().has_checkpoint_path()) {
    o.init_seed = run.model().init_seed();
  }
  return o;
}

absl::Status RunTraining(const v1::RunConfig& run, const TrainingOutput& out) {
  const auto log = [&out](const std::string& line) {
    if (out.log) out.log(line);
  };
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer,
                          LoadTokenizer(run.data().tokenizer_path()));
  Transformer::Options options;
  options.threads = run.training().threads();
  std::unique_ptr<Transformer> model;
  std::optional<HfWeightsReader> init_reader;
  const v1::ModelSpec& source = run.model();
  STRATA_ASSIGN_OR_RETURN(ModelConfig config, ConfigFor(source));
  STRATA_RETURN_IF_ERROR(CheckFamily(run, config));
  if (source.has_checkpoint_path() && StreamOffloadedWeights(run)) {
    STRATA_ASSIGN_OR_RETURN(model, Transformer::Create(config, options));
    STRATA_ASSIGN_OR_RETURN(init_reader, HfWeightsReader::Open(source.checkpoint_path(), *model));
  } else if (source.has_checkpoint_path()) {
    STRATA_ASSIGN_OR_RETURN(model, LoadHfCheckpoint(source.checkpoint_path(), options));
  } else {
    STRATA_ASSIGN_OR_RETURN(model, Transformer::Create(config, options));
    // Offloaded ZO and ZeRO stage 3 initialize their weights where they rest.
    if (!StreamOffloadedWeights(run) && !ShardedWeights(run)) {
      model->InitializeParameters(source.init_seed());
    }
  }
  log(absl::StrFormat("model: %s, %d layers, d_model %d, %.2fM parameters",
                      std::string(ModelFamilyName(model->config().family)), model->config().n_layer,
                      model->config().d_model, model->config().NumParameters() / 1e6));
  // The data: a task's examples, or a corpus whose end is held out.
  std::optional<task::TaskData> task_data;
  TokenCorpus train, eval;
  double entropy = 0;
  if (run.has_task()) {
    STRATA_ASSIGN_OR_RETURN(task_data, LoadTaskData(run.task(), *tokenizer, model->config()));
    task_data->tokenizer = tokenizer.get();
    log(absl::StrFormat("task %s: %d train + %d dev examples", task_data->definition.name,
                        task_data->train.size(), task_data->dev.size()));
  } else {
    const std::vector<std::string> files(run.data().train_paths().begin(),
                                         run.data().train_paths().end());
    STRATA_ASSIGN_OR_RETURN(CorpusFormat format, FormatFor(run.data().format()));
    // Text is tokenized, so the tokenizer's ids must fit the model; pre-tokenized files are
    // checked token by token against the model's vocabulary as they load.
    bool tokenizes = format == CorpusFormat::kText || format == CorpusFormat::kJsonl;
    for (const std::string& f : files) {
      tokenizes = tokenizes || (format == CorpusFormat::kAuto && !absl::EndsWith(f, ".bin"));
    }
    if (tokenizes) STRATA_RETURN_IF_ERROR(CheckTokenizerFits(*tokenizer, model->config()));
    STRATA_ASSIGN_OR_RETURN(MessageRenderer render_messages,
                            ChatRendererFor(run.data().tokenizer_path()));
    STRATA_ASSIGN_OR_RETURN(
        TokenCorpus corpus,
        TokenCorpus::Load(files, format, tokenizer.get(), run.data().text_field(),
                          model->config().vocab_size, render_messages));
    const int64_t split =
        static_cast<int64_t>(corpus.size() * (1.0 - run.data().eval_fraction()));
    const absl::Span<const int32_t> all = corpus.tokens();
    train = TokenCorpus::FromTokens({all.begin(), all.begin() + split});
    eval = TokenCorpus::FromTokens({all.begin() + split, all.end()});
    entropy = corpus.UnigramEntropy();
    log(absl::StrFormat("data: %d files, %d train + %d eval tokens, unigram entropy %.4f nats",
                        files.size(), train.size(), eval.size(), entropy));
  }
  const task::TaskData* task = task_data.has_value() ? &*task_data : nullptr;
  // The last evaluation, in words (against the unigram entropy for a corpus).
  const auto log_final_eval = [&](const EvalResult& result) {
    if (task != nullptr) {
      log(DescribeEval(result));
    } else {
      log(absl::StrFormat("eval loss %.4f = %.2f x the unigram entropy %.4f", result.loss,
                          result.loss / entropy, entropy));
    }
  };
  const std::function<bool()> stop = [&out] {
    return out.stop_requested != nullptr && out.stop_requested->load();
  };

  if (run.optimizer().has_zeroth_order()) {
    STRATA_ASSIGN_OR_RETURN(ZoTrainerOptions o, ZoOptionsFor(run));
    if (o.offload.has_value()) {
      if (init_reader.has_value()) {
        HfWeightsReader* reader = &*init_reader;
        o.offload->load_tensor = [reader](int id, float* dst) { return reader->Read(id, dst); };
      } else if (StreamOffloadedWeights(run)) {
        o.offload->init_seed = source.init_seed();
      }
    }
    o.stop_requested = stop;
    o.events = ReportingEvents(out.report);
    if (out.report) {
      o.on_step = [report = out.report](const zo::ZoStepRecord& step) {
        v1::RankReport r;
        v1::ZoStepRecord* record = r.mutable_zo_step();
        record->set_step(step.step);
        record->set_seed(step.seed);
        for (float g : step.scalars) record->add_projected_grads(g);
        record->set_lr(step.lr);
        record->set_skipped(step.skipped);
        record->set_loss(step.loss);
        report(r);
      };
    }
    STRATA_RETURN_IF_ERROR(SeedFromCheckpoint(run.checkpoint().resume_from(), o.checkpoint_dir,
                                              o.keep_checkpoints, log));
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<TrainableAdapters> adapters,
                            LoggedAdapters(run, *model, log));
    o.adapters = adapters.get();
    o.task = task;
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<ZoTrainer> trainer,
                            ZoTrainer::Create(model.get(), &train, &eval, o));
    STRATA_RETURN_IF_ERROR(trainer->Run(log));
    STRATA_ASSIGN_OR_RETURN(const EvalResult final_eval, trainer->Evaluate());
    log_final_eval(final_eval);
    if (!run.checkpoint().export_dir().empty()) {
      STRATA_RETURN_IF_ERROR(trainer->ExportHf(run.checkpoint().export_dir()));
      log("saved " + run.checkpoint().export_dir());
    }
    return absl::OkStatus();
  }

  STRATA_ASSIGN_OR_RETURN(FoTrainerOptions o, FoOptionsFor(run));
  o.stop_requested = stop;
  o.events = ReportingEvents(out.report);
  std::unique_ptr<KeyValueStore> rendezvous_store;
  std::unique_ptr<Communicator> comm;
  if (run.world_size() > 1) {
    const v1::RunRendezvous& meet = run.rendezvous();
    GlooOptions gloo;
    if (!meet.coordinator().empty()) {
      TlsConfig tls;
      tls.ca_file = meet.tls_ca();
      tls.insecure = meet.insecure();
      STRATA_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                              MakeChannelCredentials(tls, "strata-train"));
      if (const char* token = std::getenv("STRATA_WORKER_TOKEN");
          token != nullptr && *token != '\0' && !tls.insecure) {
        credentials =
            grpc::CompositeChannelCredentials(credentials, grpc::AccessTokenCredentials(token));
      }
      rendezvous_store = std::make_unique<CoordinatorStore>(
          grpc::CreateChannel(meet.coordinator(), credentials), meet.prefix());
      gloo.store = rendezvous_store.get();
    } else if (meet.dir().empty()) {
      return absl::InvalidArgumentError(
          "run config: a multi-rank run needs rendezvous.coordinator or rendezvous.dir");
    }
    gloo.rank = run.rank();
    gloo.size = run.world_size();
    gloo.store_dir = meet.dir();
    gloo.prefix = meet.prefix();
    gloo.timeout = absl::Seconds(meet.collective_timeout().seconds()) +
                   absl::Nanoseconds(meet.collective_timeout().nanos());
    if (!meet.host().empty()) gloo.hostname = meet.host();
    STRATA_ASSIGN_OR_RETURN(comm, CreateGlooCommunicator(gloo));
    o.comm = comm.get();
    log(absl::StrFormat(
        "data parallel: rank %d of %d, ZeRO stage %d, met through %s", gloo.rank, gloo.size,
        o.zero_stage,
        gloo.store != nullptr ? "the coordinator at " + meet.coordinator() : gloo.store_dir));
  } else {
    STRATA_RETURN_IF_ERROR(
        SeedFromCheckpoint(run.checkpoint().resume_from(),
                           o.checkpoint_dir.empty() ? "" : FoRankCheckpointDir(o.checkpoint_dir, 0),
                           o.keep_checkpoints, log));
  }
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<TrainableAdapters> adapters,
                          LoggedAdapters(run, *model, log));
  o.adapters = adapters.get();
  o.task = task;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<FoTrainer> trainer,
                          FoTrainer::Create(model.get(), &train, &eval, o));
  STRATA_RETURN_IF_ERROR(trainer->Run(log));
  STRATA_ASSIGN_OR_RETURN(const EvalResult final_eval, trainer->Evaluate());
  log_final_eval(final_eval);
  return absl::OkStatus();
}

}  // namespace strata
