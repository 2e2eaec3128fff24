// The federated edge client (strata-edge): joins a federated ZO job, keeps the global model by
// replaying the coordinator's history (seeds and scalars only) from θ0, and when sampled runs
// the round's τ local zeroth-order steps on its own data — forward passes only — and pushes one
// summed scalar per candidate seed it used.
//
// Its data follows the job: text windows with the mean token loss, or — when the job has a task
// (RegisterClientResponse.task) — its own JSONL examples rendered with the task's definition and
// tokenized with its tokenizer, each local step over a task batch with the batch's objective
// attached to the model (the candidate cross-entropy, or 1 - accuracy / F1). θ0 is the job's
// seeded initialization, or a checkpoint the client holds, loaded only when it hashes to the
// job's digest (base_checkpoint.h).
//
// State: `state_dir`/model-<round> (the global model at the last replayed round, Hugging Face
// safetensors) and `state_dir`/round (the job id, that round and the directory), the directory
// written first and the round file replaced atomically after every replay, so a restarted
// client continues from exactly where it was. Local training runs on the
// in-memory copy, which is then reloaded from the saved global model (one model in memory).
// The coordinator going away (UNAVAILABLE) is retried with exponential backoff; a lost session
// (UNAUTHENTICATED, e.g. a coordinator restart) re-registers.
#ifndef STRATA_SERVICES_EDGE_EDGE_CLIENT_H_
#define STRATA_SERVICES_EDGE_EDGE_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "proto/strata/v1/federated_service.grpc.pb.h"
#include "runtime/data/dataset.h"
#include "runtime/data/tokenizer.h"
#include "runtime/model/transformer.h"
#include "runtime/peft/trainable_adapters.h"
#include "runtime/peft/zo_adapters.h"
#include "runtime/task/task_definition.h"
#include "runtime/task/task_examples.h"
#include "runtime/zo/zo_optimizer.h"

namespace strata {

struct EdgeClientOptions {
  std::shared_ptr<grpc::Channel> channel;
  std::string job_id;
  std::string client_id;
  std::string token;      // Enrollment token.
  std::string data_file;  // Local training text, for a job without a task.
  std::string task_file;  // Local task examples (JSONL), for a job with a task.
  // Optional held-out data, as the job trains (text, or JSONL task examples): the global model's
  // loss (and a task's metrics) after each replay.
  std::string eval_file;
  std::string tokenizer;   // tokenizer.json or a model directory; empty: bytes.
  std::string base_model;  // θ0's checkpoint, for a job that starts from one.
  std::string state_dir;
  int threads = 1;
  // Register, replay the whole history, save, and exit without training (a late joiner's
  // catch-up, or reading the final model).
  bool sync_only = false;
  absl::Duration max_backoff = absl::Seconds(10);
  std::function<void(const std::string&)> log = [](const std::string&) {};
};

class EdgeClient {
 public:
  explicit EdgeClient(EdgeClientOptions options);
  // Until the job has no more rounds (then the final history is replayed and saved).
  absl::Status Run();

  // The global model's round and a 64-bit FNV-1a digest of its fp32 weights (then its
  // adapters', for LoRA and prefix jobs).
  int64_t round() const { return round_; }
  uint64_t WeightsDigest() const;

 private:
  absl::Status Connect();  // Register (with backoff) and build or load the model.
  // The global model from the first registration: θ0 and the adapters, or the saved state.
  absl::Status BuildModel(const v1::RegisterClientResponse& response);
  absl::Status LoadTheta0(const v1::BaseModel& base);
  // After the first registration, when the job's kind of data is known.
  absl::Status LoadData();
  absl::Status Replay(const v1::HistoryEntry& entry);
  absl::Status SaveState();
  absl::Status LoadState();
  absl::Status LoadAdapterWeights(const std::string& dir);  // Into adapters_.
  absl::StatusOr<v1::PushResultRequest> Train(const v1::Task& task);
  // ", eval loss L" (and ", eval <metric> V" for each task metric).
  absl::StatusOr<std::string> Evaluate();
  // Calls `rpc` until it is neither UNAVAILABLE nor (re-registering) UNAUTHENTICATED.
  grpc::Status Call(const std::function<grpc::Status(grpc::ClientContext*)>& rpc);

  EdgeClientOptions options_;
  std::unique_ptr<v1::FederatedService::Stub> stub_;
  std::string session_;
  uint64_t root_ = 0;
  int num_candidates_ = 0;
  std::unique_ptr<Transformer> model_;
  std::unique_ptr<zo::ZoOptimizer> replayer_;  // Applies history entries.
  // LoRA and prefix jobs: the adapters over the frozen θ0 are the global model's trained part;
  // history entries apply to them and the saved state holds only them.
  std::unique_ptr<TrainableAdapters> adapters_;
  std::unique_ptr<ZoAdapters> adapter_replayer_;
  int64_t round_ = 0;
  std::string model_dir_;  // The saved global model of round_ (state_dir/model-<round>).
  std::unique_ptr<Tokenizer> tokenizer_;
  std::optional<v1::TaskSpec> task_;  // The job's task; unset: text.
  task::TaskDefinition definition_;
  std::vector<nlohmann::json> task_lines_;  // --task_data, read before registering.
  std::vector<task::TaskExample> examples_, eval_examples_;
  TokenCorpus data_, eval_;
  int64_t num_samples_ = 0;  // Text windows of 64 tokens, or task examples.
};

}  // namespace strata

#endif  // STRATA_SERVICES_EDGE_EDGE_CLIENT_H_
