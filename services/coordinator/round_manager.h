// Federated zeroth-order rounds (FedKSeed): the coordinator's side of FederatedService, as a
// plain class. A federated job has a base model θ0 (the job's model spec), K candidate seeds
// (derived from the job seed; only their indices cross the network) and rounds. Each round
// waits for `min_available_nodes` online clients, samples `fraction_train` of them (at least
// `min_train_nodes`) with a seeded shuffle, hands each its task and the history entries it
// lacks, and collects one result per sampled client: per seed index used, the summed projected
// gradients. A round closes when every sampled client answered or at its deadline; with
// `min_replies` valid results it appends one history entry — per seed, the sample-weighted mean
// of the clients' scalars, in float64, summed in client-id order — persisted before any client
// sees it; otherwise it fails and changes nothing. Clients rebuild the model bit for bit by
// replaying the history from θ0 (docs/federated.md).
//
// FedKSeed-Pro (`seed_probabilities`): each task carries K sampling probabilities computed from
// the history (docs/federated.md), so seeds that moved the model more are drawn more often.
//
// Register hands a client the job's description: θ0 (the model spec, adapters, the base
// checkpoint's digest), the candidate root and K, and the task its examples are rendered and
// trained with, if any; each task carries the round's hyperparameters.
//
// Robustness: late results (another round, or after the deadline) are LATE; a client not
// sampled gets NOT_SAMPLED; a repeated push gets the first outcome (DUPLICATE when it was
// accepted); non-finite scalars, scalars beyond `scalar_clip`, bad or repeated seed indices are
// REJECTED and counted. Sessions are bound to one client and one job. After a coordinator
// restart the closed rounds are read back, an open round is failed, and clients re-register.
//
// Metrics: per-job gauges (label job_id) while the job's rounds go on, then none; counters of
// replies and rounds by outcome over every job since the process started.
#ifndef STRATA_SERVICES_COORDINATOR_ROUND_MANAGER_H_
#define STRATA_SERVICES_COORDINATOR_ROUND_MANAGER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/strata/v1/federated_service.pb.h"
#include "services/common/metrics.h"
#include "services/coordinator/job_manager.h"
#include "services/coordinator/job_store.h"

namespace strata {

class RoundManager {
 public:
  struct Options {
    JobStore* store = nullptr;   // Not owned.
    JobManager* jobs = nullptr;  // Not owned.
    // Enrollment tokens: token -> the client id it may register as ("*": any). Empty: no
    // client may register unless open_enrollment.
    std::map<std::string, std::string> enrollment;
    bool open_enrollment = false;  // Anyone may register (development).
    // Per client and job: PullTask and PushResult calls per second (a token bucket holding
    // rate_burst calls); beyond it RESOURCE_EXHAUSTED, counted. 0: no limit.
    double rate_per_second = 20;
    double rate_burst = 40;
    absl::Duration online_window = absl::Seconds(30);  // Seen within this long: online.
    absl::Duration poll_interval = absl::Milliseconds(200);
    std::function<absl::Time()> clock = [] { return absl::Now(); };
  };

  explicit RoundManager(Options options) : options_(std::move(options)) {}

  absl::StatusOr<v1::RegisterClientResponse> Register(const v1::RegisterClientRequest& request)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The later calls name their session (the token Register returned); it must belong to the
  // request's client and job (PERMISSION_DENIED otherwise, UNAUTHENTICATED when unknown).
  absl::StatusOr<v1::PullTaskResponse> PullTask(const v1::PullTaskRequest& request,
                                                const std::string& session)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::PushResultResponse> PushResult(const v1::PushResultRequest& request,
                                                    const std::string& session)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::SyncHistoryResponse> SyncHistory(const v1::SyncHistoryRequest& request,
                                                      const std::string& session)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ListRoundsResponse> ListRounds(const std::string& job_id)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Wire bytes of a call, counted for the client (metrics, round records).
  void CountBytes(const std::string& job_id, const std::string& client_id, int64_t up, int64_t down)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Opens and times out rounds. Called periodically.
  void Tick() ABSL_LOCKS_EXCLUDED(mu_);
  void CollectMetrics(MetricsWriter* out) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Client {
    std::string session;
    int64_t num_samples = 1;
    absl::Time last_seen;
    double tokens = -1;  // Rate limit bucket; -1 until first used (then full).
    absl::Time refilled;
  };
  struct Reply {
    v1::PushOutcome outcome = v1::PUSH_OUTCOME_UNSPECIFIED;
    v1::PushResultRequest result;
  };
  struct Job {
    std::string id;
    v1::FederatedSpec spec;
    v1::HyperParameters hyper;
    uint64_t root = 0;    // Candidate seeds: CandidateSeed(root, k).
    v1::ModelSpec model;  // θ0, as clients build it.
    v1::PeftSpec peft;    // Adapters (LoRA, prefix) the rounds train over a frozen θ0, if set.
    std::string base_sha256;  // θ0 is the clients' checkpoint of this digest; empty: seeded.
    std::optional<v1::TaskSpec> task;  // What clients train on: a task, or (unset) text.
    std::map<std::string, Client> clients;
    std::vector<v1::HistoryEntry> history;  // Closed rounds, in order.
    std::vector<v1::RoundInfo> rounds;      // Every round so far.
    int64_t round = 0;                      // The current round (0: none yet).
    bool open = false;
    absl::Time deadline;
    std::set<std::string> sampled;
    std::map<std::string, Reply> replies;
    std::map<std::string, std::pair<int64_t, int64_t>> bytes;  // Per client this round.
    std::vector<double> probabilities;  // FedKSeed-Pro, for the open round; empty: uniform.
    bool finished = false;
  };

  absl::StatusOr<Job*> FindLocked(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Job*> SessionLocked(const std::string& job_id, const std::string& client_id,
                                     const std::string& session) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Opens the next round when enough clients are online; closes the open one when complete or
  // past its deadline.
  void AdvanceLocked(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CloseLocked(Job& job, bool timed_out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int OnlineLocked(const Job& job) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // FedKSeed-Pro: seed k's probability from the history, softmax of the min-max normalized mean
  // |aggregated scalar| of k over the rounds that used it (0 for unused seeds).
  static std::vector<double> SeedProbabilities(const Job& job);
  v1::RoundInfo& CurrentInfo(Job& job) { return job.rounds.back(); }
  // RESOURCE_EXHAUSTED (and counted) when `client` has used up its call rate.
  absl::Status SpendCallLocked(Client& client, const std::string& client_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> sessions_ ABSL_GUARDED_BY(mu_);  // Token -> job/client.
  // Replies by outcome, over every job (metrics).
  std::map<std::string, int64_t> outcomes_ ABSL_GUARDED_BY(mu_);
  // Rounds this process ended, closed (an entry appended) or failed (metrics).
  int64_t rounds_closed_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t rounds_failed_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t rate_limited_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t registrations_refused_ ABSL_GUARDED_BY(mu_) = 0;
  Histogram round_seconds_ ABSL_GUARDED_BY(mu_){{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300}};
};

}  // namespace strata

#endif  // STRATA_SERVICES_COORDINATOR_ROUND_MANAGER_H_
