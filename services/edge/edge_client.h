// The federated edge client (strata-edge): joins a federated ZO job, keeps the global model by
// replaying the coordinator's history (seeds and scalars only) from θ0, and when sampled runs
// the round's τ local zeroth-order steps on its own data — forward passes only — and pushes one
// summed scalar per candidate seed it used.
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
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/strata/v1/federated_service.grpc.pb.h"
#include "runtime/data/dataset.h"
#include "runtime/model/transformer.h"
#include "runtime/peft/trainable_adapters.h"
#include "runtime/peft/zo_adapters.h"
#include "runtime/zo/zo_optimizer.h"

namespace strata {

struct EdgeClientOptions {
  std::shared_ptr<grpc::Channel> channel;
  std::string job_id;
  std::string client_id;
  std::string token;      // Enrollment token.
  std::string data_file;  // Local training text (byte tokens).
  std::string eval_file;  // Optional held-out text: the global model's loss after each replay.
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
  absl::Status Replay(const v1::HistoryEntry& entry);
  absl::Status SaveState();
  absl::Status LoadState();
  absl::Status LoadAdapterWeights(const std::string& dir);  // Into adapters_.
  absl::StatusOr<v1::PushResultRequest> Train(const v1::Task& task);
  absl::StatusOr<float> EvalLoss();
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
  TokenCorpus data_, eval_;
  int64_t windows_ = 0;
};

}  // namespace strata

#endif  // STRATA_SERVICES_EDGE_EDGE_CLIENT_H_
