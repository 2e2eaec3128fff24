// See edge_client.h. The replay arithmetic is docs/federated.md's: for each history entry, for
// each (seed index, scalar) in order, one ZO-SGD update with seed CandidateSeed(root, index),
// coefficient fp32(lr * fp32(scalar)), no weight decay — ZoOptimizer::Replay, or ZoAdapters::Replay
// on the adapters of a LoRA or prefix job. Local steps on a task attach each batch's objective to
// the model for the step (both of its forward passes) and detach it after.
#include "services/edge/edge_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "runtime/base/status_macros.h"
#include "runtime/data/tokenizer.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/model/model_config.h"
#include "runtime/peft/peft_checkpoint.h"
#include "runtime/task/task_batch.h"
#include "runtime/task/task_evaluator.h"
#include "runtime/zo/zo_optimizer.h"
#include "services/common/adapter_spec.h"
#include "services/edge/base_checkpoint.h"
#include "services/trainer/task_loading.h"
#include "storage/atomic_file.h"

namespace strata {
namespace {

absl::Status FromGrpc(const grpc::Status& s, const char* rpc) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(rpc, ": ", s.error_message()));
}

absl::StatusOr<TokenCorpus> LoadText(const std::string& path, const Tokenizer& tokenizer) {
  return TokenCorpus::Load({path}, CorpusFormat::kText, &tokenizer, "", tokenizer.vocab_size());
}

// Examples a task job's evaluation scores per forward pass.
constexpr int kEvalExamples = 16;

zo::ZoConfig SgdConfig(double epsilon) {
  zo::ZoConfig config;
  config.variant = zo::ZoVariant::kSgd;
  config.eps = epsilon > 0 ? static_cast<float>(epsilon) : 1e-3f;
  return config;
}

}  // namespace

EdgeClient::EdgeClient(EdgeClientOptions options)
    : options_(std::move(options)), stub_(v1::FederatedService::NewStub(options_.channel)) {}

grpc::Status EdgeClient::Call(const std::function<grpc::Status(grpc::ClientContext*)>& rpc) {
  constexpr int kMaxThrottledRetries = 8;
  int throttled_retries = 0;
  absl::Duration backoff = absl::Milliseconds(100);
  for (;;) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + session_);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::Status status = rpc(&context);
    if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED && !session_.empty()) {
      options_.log("session lost (" + status.error_message() + "): registering again");
      session_.clear();
      if (absl::Status s = Connect(); !s.ok()) {
        return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
      }
      continue;
    }
    // Over the coordinator's per-client rate (--client_rate_limit): slow down and try again, a
    // bounded number of times (the same code also means a message over gRPC's size limit).
    const bool throttled = status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
                           ++throttled_retries <= kMaxThrottledRetries;
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
        status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED && !throttled) {
      return status;
    }
    options_.log(absl::StrFormat("%s (%s); retrying in %s",
                                 throttled ? "rate limited" : "coordinator unavailable",
                                 status.error_message(), absl::FormatDuration(backoff)));
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::Status EdgeClient::Connect() {
  v1::RegisterClientRequest request;
  request.set_job_id(options_.job_id);
  request.set_client_id(options_.client_id);
  request.set_token(options_.token);
  request.set_num_samples(num_samples_);
  request.set_platform(
#if defined(__aarch64__)
      "linux/aarch64"
#else
      "linux/x86_64"
#endif
  );
  request.set_replayed_round(round_);
  v1::RegisterClientResponse response;
  absl::Duration backoff = absl::Milliseconds(100);
  for (;;) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::Status status = stub_->Register(&context, request, &response);
    if (status.ok()) break;
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
        status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      return FromGrpc(status, "Register");
    }
    options_.log(absl::StrFormat("cannot register (%s); retrying in %s", status.error_message(),
                                 absl::FormatDuration(backoff)));
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
  session_ = response.session_token();
  root_ = response.candidate_root();
  num_candidates_ = response.num_candidates();
  if (model_ == nullptr) STRATA_RETURN_IF_ERROR(BuildModel(response));
  options_.log(absl::StrFormat("registered as %s for job %s at round %d (latest %d)",
                               options_.client_id, options_.job_id, round_,
                               response.latest_round()));
  return absl::OkStatus();
}

absl::Status EdgeClient::BuildModel(const v1::RegisterClientResponse& response) {
  const v1::BaseModel& base = response.base();
  const v1::ModelSpec& spec = base.model();
  if (!spec.has_config_json()) {
    return absl::FailedPreconditionError("the job's model has no inline config_json");
  }
  STRATA_ASSIGN_OR_RETURN(ModelConfig config, ParseHfConfig(spec.config_json(), "job model"));
  Transformer::Options model_options;
  model_options.threads = options_.threads;
  STRATA_ASSIGN_OR_RETURN(model_, Transformer::Create(config, model_options));
  if (base.peft().has_lora() || base.peft().has_prefix()) {
    // The frozen θ0, and adapters from the candidate root (the job's training seed).
    STRATA_RETURN_IF_ERROR(LoadTheta0(base));
    STRATA_ASSIGN_OR_RETURN(adapters_, AdaptersForSpec(base.peft(), *model_, root_));
    model_->SetAdapters(adapters_.get(), /*base_frozen=*/true);
  }
  if (absl::Status s = LoadState(); absl::IsNotFound(s)) {
    if (adapters_ == nullptr) STRATA_RETURN_IF_ERROR(LoadTheta0(base));
    round_ = 0;
  } else if (!s.ok()) {
    return s;
  }
  if (response.has_task()) task_ = response.task();
  return absl::OkStatus();
}

absl::Status EdgeClient::LoadTheta0(const v1::BaseModel& base) {
  if (base.checkpoint_sha256().empty()) {
    model_->InitializeParameters(base.model().init_seed());
    return absl::OkStatus();
  }
  if (options_.base_model.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", options_.job_id, " starts from a checkpoint (sha256 ",
                     base.checkpoint_sha256(), "): give this client's copy with --base_model=DIR"));
  }
  return LoadBaseCheckpoint(options_.base_model, base.checkpoint_sha256(), *model_);
}

absl::Status EdgeClient::LoadData() {
  const std::string& job = options_.job_id;
  if (!task_.has_value()) {
    if (!options_.task_file.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", job, " trains on text, not a task: give --data=FILE instead of --task_data"));
    }
    if (tokenizer_->vocab_size() > model_->config().vocab_size) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the tokenizer has ", tokenizer_->vocab_size(), " tokens, more than job ", job,
          "'s model (", model_->config().vocab_size, "): --tokenizer does not fit the job"));
    }
    if (!options_.eval_file.empty()) {
      STRATA_ASSIGN_OR_RETURN(eval_, LoadText(options_.eval_file, *tokenizer_));
    }
    return absl::OkStatus();
  }
  if (!options_.data_file.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job,
                     " trains a task: give this client's examples with "
                     "--task_data=FILE.jsonl instead of --data"));
  }
  if (task_lines_.empty() && !options_.sync_only) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job, " trains a task: give this client's examples with --task_data=FILE.jsonl"));
  }
  definition_ = TaskDefinitionFromSpec(*task_);
  if (!task_lines_.empty()) {
    STRATA_ASSIGN_OR_RETURN(
        examples_, TokenizeTaskExamples(definition_, task_lines_, options_.task_file, *tokenizer_,
                                        model_->config()));
  }
  if (!options_.eval_file.empty()) {
    STRATA_ASSIGN_OR_RETURN(std::vector<nlohmann::json> lines,
                            task::ReadJsonl(options_.eval_file, kMaxTaskExamples));
    STRATA_ASSIGN_OR_RETURN(
        eval_examples_, TokenizeTaskExamples(definition_, lines, options_.eval_file, *tokenizer_,
                                             model_->config()));
  }
  return absl::OkStatus();
}

absl::Status EdgeClient::LoadState() {
  std::ifstream in(options_.state_dir + "/round");
  if (!in) return absl::NotFoundError("no saved state");
  std::string job, dir;
  int64_t round = 0;
  if (!(in >> job >> round >> dir) || job != options_.job_id || dir.find('/') != dir.npos) {
    return absl::FailedPreconditionError(absl::StrCat(
        options_.state_dir, "/round belongs to another job or is damaged; use another state dir"));
  }
  if (adapters_ != nullptr) {
    STRATA_RETURN_IF_ERROR(LoadAdapterWeights(options_.state_dir + "/" + dir));
  } else {
    STRATA_RETURN_IF_ERROR(LoadHfWeights(options_.state_dir + "/" + dir, *model_));
  }
  round_ = round;
  model_dir_ = options_.state_dir + "/" + dir;
  return absl::OkStatus();
}

absl::Status EdgeClient::LoadAdapterWeights(const std::string& dir) {
  return ::strata::LoadAdapterWeights(dir, model_->layout(), *adapters_);
}

absl::Status EdgeClient::SaveState() {
  // A new directory per round, then the round file naming it, replaced atomically: a kill at any
  // point leaves the round file naming weights of exactly that round (replaying an entry twice
  // would not be idempotent).
  const std::string dir = absl::StrCat("model-", round_);
  const std::string path = options_.state_dir + "/" + dir;
  if (path == model_dir_) return absl::OkStatus();  // Already saved.
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);  // A leftover of a crash.
  if (adapters_ != nullptr) {
    STRATA_RETURN_IF_ERROR(SaveAdapters(*adapters_, model_->config(), path));
  } else {
    STRATA_RETURN_IF_ERROR(SaveHfCheckpoint(*model_, path));
  }
  STRATA_RETURN_IF_ERROR(WriteStringToFileAtomically(
      options_.state_dir + "/round", absl::StrCat(options_.job_id, " ", round_, " ", dir, "\n")));
  if (!model_dir_.empty()) std::filesystem::remove_all(model_dir_, ignored);
  model_dir_ = path;
  return absl::OkStatus();
}

absl::Status EdgeClient::Replay(const v1::HistoryEntry& entry) {
  if (entry.round() <= round_) return absl::OkStatus();  // Already in the model.
  if (entry.seed_indices_size() != entry.scalars_size()) {
    return absl::DataLossError(absl::StrCat("history entry ", entry.round(), " is malformed"));
  }
  // Stateless SGD replays: one replayer serves every entry.
  if (adapters_ != nullptr && adapter_replayer_ == nullptr) {
    STRATA_ASSIGN_OR_RETURN(adapter_replayer_,
                            ZoAdapters::Create(model_.get(), adapters_.get(), SgdConfig(1e-3)));
  } else if (adapters_ == nullptr && replayer_ == nullptr) {
    STRATA_ASSIGN_OR_RETURN(replayer_, zo::ZoOptimizer::Create(model_.get(), SgdConfig(1e-3)));
  }
  for (int i = 0; i < entry.seed_indices_size(); ++i) {
    zo::ZoStepRecord record;
    record.step = entry.round();
    record.seed = zo::StepSeed(root_, entry.seed_indices(i));
    record.scalars = {static_cast<float>(entry.scalars(i))};
    record.lr = entry.lr();
    STRATA_RETURN_IF_ERROR(adapters_ != nullptr ? adapter_replayer_->Replay(record)
                                                : replayer_->Replay(record));
  }
  round_ = entry.round();
  return absl::OkStatus();
}

absl::StatusOr<std::string> EdgeClient::Evaluate() {
  if (task_.has_value()) {
    // Rows are padded to the longest of each pass: the bound only truncates overlong prompts.
    const int max_length = model_->config().max_seq_len - model_->PrefixLength();
    STRATA_ASSIGN_OR_RETURN(task::TaskScores scores,
                            task::EvaluateTask(
                                definition_, eval_examples_, model_.get(),
                                [&](absl::Span<const int32_t> x, absl::Span<const int32_t> y, int B,
                                    int T) { return model_->Loss(x, y, B, T); },
                                kEvalExamples, max_length));
    std::string out = absl::StrFormat(", eval loss %.4f", scores.loss);
    for (const auto& [name, value] : scores.metrics) {
      absl::StrAppendFormat(&out, ", eval %s %.4f", name, value);
    }
    return out;
  }
  const int seq = std::min(64, model_->config().max_seq_len - model_->PrefixLength());
  STRATA_ASSIGN_OR_RETURN(const float loss, MeanLossOverBatches(&eval_, 4, seq, 8,
                                                                [&](absl::Span<const int32_t> x,
                                                                    absl::Span<const int32_t> y) {
                                                                  return model_->Loss(x, y, 4, seq);
                                                                }));
  return absl::StrFormat(", eval loss %.4f", loss);
}

absl::StatusOr<v1::PushResultRequest> EdgeClient::Train(const v1::Task& task) {
  const v1::HyperParameters& hyper = task.hyperparameters();
  const int batch = std::max(1, hyper.batch_size());
  const int seq = std::max(2, hyper.seq_len());
  // This client's own sequence of batches and seed choices for the round: windows of its text,
  // or batches of its task examples (rows of at most seq tokens, each batch with its objective).
  const uint64_t seed = zo::StepSeed(std::hash<std::string>()(options_.client_id), task.round());
  std::optional<BatchSampler> sampler;
  std::optional<task::TaskBatcher> batcher;
  task::TaskBatch task_batch;
  std::vector<int32_t> tokens, targets;
  if (task_.has_value()) {
    const int max_length = std::min(seq, model_->config().max_seq_len - model_->PrefixLength());
    absl::StatusOr<task::TaskBatcher> created =
        task::TaskBatcher::Create(&definition_, &examples_, {batch, max_length, seed, 0, 1});
    if (!created.ok()) {
      return absl::Status(created.status().code(),
                          absl::StrCat(options_.task_file, ": ", created.status().message()));
    }
    batcher.emplace(*std::move(created));
  } else {
    STRATA_ASSIGN_OR_RETURN(sampler, BatchSampler::Create(&data_, {batch, seq, seed, 0, 1}));
    tokens.resize(static_cast<size_t>(batch) * seq);
    targets.resize(tokens.size());
  }
  // A batch's objective is attached for its step only.
  absl::Cleanup detach = [this] { model_->SetObjective(nullptr); };
  // Full ZO moves the weights in place (the global model is reloaded from its saved round after);
  // ZO over adapters moves only them, kept here.
  std::unique_ptr<zo::ZoOptimizer> optimizer;
  std::unique_ptr<ZoAdapters> adapter_optimizer;
  std::vector<float> global_adapters;
  if (adapters_ != nullptr) {
    global_adapters.assign(adapters_->weights().begin(), adapters_->weights().end());
    STRATA_ASSIGN_OR_RETURN(adapter_optimizer, ZoAdapters::Create(model_.get(), adapters_.get(),
                                                                  SgdConfig(hyper.epsilon())));
  } else {
    STRATA_ASSIGN_OR_RETURN(optimizer,
                            zo::ZoOptimizer::Create(model_.get(), SgdConfig(hyper.epsilon())));
  }
  std::mt19937_64 pick(seed);
  // FedKSeed-Pro: the coordinator's probabilities; otherwise uniform over the K candidates.
  std::discrete_distribution<uint32_t> weighted(task.seed_probabilities().begin(),
                                                task.seed_probabilities().end());
  const bool pro = task.seed_probabilities_size() == task.num_candidates();
  std::map<uint32_t, double> sums;  // Seed index -> summed projected gradient.
  double loss = 0;
  const int K = std::max(1, task.num_candidates());
  for (int t = 1; t <= hyper.local_steps(); ++t) {
    absl::Span<const int32_t> x = tokens, y = targets;
    int rows = batch, T = seq;
    if (batcher.has_value()) {
      STRATA_RETURN_IF_ERROR(batcher->Next(&task_batch));
      x = task_batch.tokens;
      y = task_batch.targets;
      rows = task_batch.rows;
      T = task_batch.T;
      model_->SetObjective(task_batch.sequence_objective());
    } else {
      sampler->Next(absl::MakeSpan(tokens), absl::MakeSpan(targets));
    }
    const uint32_t index =
        pro ? weighted(pick) : static_cast<uint32_t>(pick() % static_cast<uint64_t>(K));
    const uint64_t step_seed = zo::StepSeed(task.candidate_root(), index);
    absl::StatusOr<zo::ZoStepRecord> stepped;
    if (adapter_optimizer != nullptr) {
      adapter_optimizer->SetNextSeed(step_seed);
      stepped = adapter_optimizer->Step(x, y, rows, T, t, hyper.lr());
    } else {
      optimizer->SetNextSeed(step_seed);
      stepped = optimizer->Step(x, y, rows, T, t, hyper.lr());
    }
    STRATA_ASSIGN_OR_RETURN(zo::ZoStepRecord record, std::move(stepped));
    loss += record.loss;
    if (!record.skipped) sums[index] += record.scalars[0];
  }
  v1::PushResultRequest push;
  push.set_job_id(options_.job_id);
  push.set_client_id(options_.client_id);
  push.set_round(task.round());
  push.set_num_samples(num_samples_);
  push.set_local_loss(loss / std::max(1, hyper.local_steps()));
  for (const auto& [index, sum] : sums) {
    push.add_seed_indices(index);
    push.add_scalars(static_cast<float>(sum));
  }
  // Back to the global model (the local steps only produced the scalars).
  if (adapters_ != nullptr) {
    std::copy(global_adapters.begin(), global_adapters.end(), adapters_->weights().begin());
    return push;
  }
  optimizer.reset();
  STRATA_RETURN_IF_ERROR(LoadHfWeights(model_dir_, *model_));
  return push;
}

absl::Status EdgeClient::Run() {
  STRATA_RETURN_IF_ERROR(MakeDirs(options_.state_dir));
  STRATA_ASSIGN_OR_RETURN(tokenizer_, LoadTokenizer(options_.tokenizer));
  // The aggregation weight is known before the job is: the examples, or the text's windows.
  num_samples_ = 1;
  if (!options_.task_file.empty()) {
    STRATA_ASSIGN_OR_RETURN(task_lines_, task::ReadJsonl(options_.task_file, kMaxTaskExamples));
    num_samples_ = static_cast<int64_t>(task_lines_.size());
  } else if (!options_.data_file.empty()) {
    STRATA_ASSIGN_OR_RETURN(data_, LoadText(options_.data_file, *tokenizer_));
    num_samples_ = std::max<int64_t>(1, data_.size() / 64);
  }
  STRATA_RETURN_IF_ERROR(Connect());
  STRATA_RETURN_IF_ERROR(LoadData());
  auto sync = [&](bool save) -> absl::Status {
    for (;;) {
      v1::SyncHistoryRequest request;
      request.set_job_id(options_.job_id);
      request.set_client_id(options_.client_id);
      request.set_after_round(round_);
      v1::SyncHistoryResponse response;
      STRATA_RETURN_IF_ERROR(FromGrpc(
          Call([&](grpc::ClientContext* c) { return stub_->SyncHistory(c, request, &response); }),
          "SyncHistory"));
      for (const v1::HistoryEntry& e : response.history()) STRATA_RETURN_IF_ERROR(Replay(e));
      if (response.history().empty() || round_ >= response.latest_round()) break;
    }
    if (save) STRATA_RETURN_IF_ERROR(SaveState());
    return absl::OkStatus();
  };
  auto report = [&](const char* what) {
    std::string line =
        absl::StrFormat("%s: model at round %d, weights %016x", what, round_, WeightsDigest());
    if (!options_.eval_file.empty()) {
      absl::StatusOr<std::string> eval = Evaluate();
      absl::StrAppend(&line,
                      eval.ok() ? *eval : absl::StrCat(", eval failed: ", eval.status().message()));
    }
    options_.log(line);
  };
  if (options_.sync_only) {
    STRATA_RETURN_IF_ERROR(sync(true));
    report("synced");
    return absl::OkStatus();
  }
  STRATA_RETURN_IF_ERROR(SaveState());
  report("joined");
  for (;;) {
    v1::PullTaskRequest pull;
    pull.set_job_id(options_.job_id);
    pull.set_client_id(options_.client_id);
    pull.set_replayed_round(round_);
    v1::PullTaskResponse response;
    STRATA_RETURN_IF_ERROR(
        FromGrpc(Call([&](grpc::ClientContext* c) { return stub_->PullTask(c, pull, &response); }),
                 "PullTask"));
    if (response.has_retry_after()) {
      absl::SleepFor(absl::Seconds(response.retry_after().seconds()) +
                     absl::Nanoseconds(response.retry_after().nanos()));
      continue;
    }
    if (response.finished()) {
      STRATA_RETURN_IF_ERROR(sync(true));
      report("job finished");
      return absl::OkStatus();
    }
    const v1::Task& task = response.task();
    for (const v1::HistoryEntry& e : task.history()) STRATA_RETURN_IF_ERROR(Replay(e));
    STRATA_RETURN_IF_ERROR(SaveState());
    STRATA_ASSIGN_OR_RETURN(v1::PushResultRequest push, Train(task));
    v1::PushResultResponse pushed;
    STRATA_RETURN_IF_ERROR(
        FromGrpc(Call([&](grpc::ClientContext* c) { return stub_->PushResult(c, push, &pushed); }),
                 "PushResult"));
    options_.log(absl::StrFormat("round %d: pushed %d seeds (%d bytes), local loss %.4f: %s%s%s",
                                 task.round(), push.seed_indices_size(),
                                 static_cast<int>(push.ByteSizeLong()), push.local_loss(),
                                 v1::PushOutcome_Name(pushed.outcome()),
                                 pushed.message().empty() ? "" : ": ", pushed.message()));
  }
}

uint64_t EdgeClient::WeightsDigest() const {
  auto fnv1a = [](uint64_t h, absl::Span<const float> floats) {
    const unsigned char* bytes = reinterpret_cast<const unsigned char*>(floats.data());
    for (size_t i = 0; i < floats.size() * sizeof(float); ++i)
      h = (h ^ bytes[i]) * 0x100000001b3ULL;
    return h;
  };
  uint64_t h = fnv1a(0xcbf29ce484222325ULL, static_cast<const Transformer&>(*model_).params());
  if (adapters_ != nullptr)
    h = fnv1a(h, static_cast<const TrainableAdapters&>(*adapters_).weights());
  return h;
}

}  // namespace strata
