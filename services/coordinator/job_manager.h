// The coordinator's job lifecycle: submission, priority + gang scheduling onto the workers the
// registry knows, start/stop orders for the workers' assignment streams, progress and rank exits,
// group restarts after failures and lost workers, cancel and kill, and recovery of every
// non-terminal job after a coordinator restart. Plain class (no gRPC): JobServiceImpl and
// WorkerServiceImpl are thin handlers in front of it. Every state change is written to the
// JobStore before it is visible to callers.
//
// Scheduling: QUEUED jobs are considered in (priority, submission) order — lower priority
// values first, FIFO within a priority — and strictly: a job that does not fit blocks the ones
// behind it (no backfill), so `jobs_ahead` is exact. A job of N ranks starts only when all N
// fit at once (cores, memory, GPUs, NVMe bytes and node_selector labels of live workers, minus
// what placed ranks reserve). A job that would not fit even on idle live workers blocks nobody:
// it waits as "unschedulable" (the reason in its message) until workers that fit it register.
//
// Admission: a spec within the bounds of spec_limits.h whose paths obey the storage model
// (job_paths.h), within the owner's quota (Options::quota). A kill ends the job within
// Options::kill_grace even when no worker acknowledges it.
//
// Cordon and drain: an operator may cordon a worker (no new ranks are placed there; kept in the
// store) and drain it: every job with a rank there stops gracefully (its ranks checkpoint
// first), waits in RESTARTING until they exit, and queues again to start on other workers from
// that checkpoint. A drain is not a failure: it uses none of the job's max_restarts.
//
// Ownership: a job belongs to the user who submitted it; Get/List/Cancel/Kill with an owner see
// only that owner's jobs (an empty owner sees all: the coordinator's own tools and tests).
#ifndef STRATA_SERVICES_COORDINATOR_JOB_MANAGER_H_
#define STRATA_SERVICES_COORDINATOR_JOB_MANAGER_H_

#include <cstdint>
#include <deque>
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
#include "proto/strata/v1/job_service.pb.h"
#include "proto/strata/v1/worker_service.pb.h"
#include "services/common/job_state.h"
#include "services/common/metrics.h"
#include "services/coordinator/job_store.h"
#include "services/coordinator/rendezvous_store.h"
#include "services/coordinator/tokens.h"
#include "services/coordinator/worker_registry.h"

namespace strata {

class JobManager {
 public:
  // One point of a job's loss curve (rank 0's progress reports, or a federated round).
  struct CurvePoint {
    int64_t step = 0;
    double loss = 0;
    double eval_loss = 0;  // NaN when that report had no evaluation.
  };
  // A job as the dashboard shows it.
  struct JobView {
    v1::Job job;
    std::string owner;
    std::vector<CurvePoint> curve;     // Oldest first, at most kMaxCurvePoints.
    std::vector<v1::LogLine> events;   // The coordinator's newest lines about it, oldest first.
  };
  static constexpr size_t kMaxCurvePoints = 1024;

  struct Options {
    JobStore* store = nullptr;           // Not owned.
    WorkerRegistry* registry = nullptr;  // Not owned.
    // The attempts' rendezvous keys are dropped here when an attempt ends. Optional, not owned.
    RendezvousStore* rendezvous = nullptr;
    std::string coordinator_address;  // Sent to ranks in StartRank.
    // The cluster's read-only data roots (normalized): the absolute paths a spec may read
    // (services/jobspec/job_paths.h). Empty: specs may name only their owner's outputs.
    std::vector<std::string> data_roots;
    // A started job (or, after a coordinator restart, a running one) whose ranks no worker
    // reports within this long restarts from its checkpoint.
    absl::Duration adopt_timeout = absl::Seconds(30);
    // A graceful stop (cancel) that has not finished after this long is escalated to a kill.
    absl::Duration cancel_grace = absl::Seconds(60);
    // A kill (or a failure's teardown) whose ranks no worker confirms within this long ends
    // anyway: the ranks are written off (a worker that reports them later is told to stop).
    absl::Duration kill_grace = absl::Seconds(60);
    // Per-user limits (tokens file); no limits when unset.
    std::function<UserQuota(const std::string& owner)> quota;
    // List replies stop adding jobs at this many bytes (the client's default receive limit is
    // 4 MiB) and return a next_page_token.
    size_t max_list_bytes = 2 << 20;
    size_t max_log_lines_per_job = 20000;
    std::function<absl::Time()> clock = [] { return absl::Now(); };
  };

  // Loads every job from the store and recovers the non-terminal ones.
  static absl::StatusOr<std::unique_ptr<JobManager>> Create(Options options);

  // Users (JobService).
  absl::StatusOr<v1::Job> Submit(const v1::JobSpec& spec, const std::string& request_id,
                                 const std::string& owner) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Job> Get(const std::string& job_id, const std::string& owner)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ListJobsResponse> List(const v1::ListJobsRequest& request,
                                            const std::string& owner) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Job> Cancel(const std::string& job_id, const std::string& reason,
                                 const std::string& owner) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Job> Kill(const std::string& job_id, const std::string& reason,
                               const std::string& owner) ABSL_LOCKS_EXCLUDED(mu_);
  // Log lines of a job with sequence > after_sequence (at most `tail` of the newest when
  // tail > 0), and the job's state.
  absl::StatusOr<std::vector<v1::LogLine>> Logs(const v1::JobLogsRequest& request,
                                                const std::string& owner, v1::JobState* state)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until job `job_id` changes after `version` (or `timeout` passes); returns the job and
  // sets *version to the current one.
  absl::StatusOr<v1::Job> WaitForChange(const std::string& job_id, const std::string& owner,
                                        int64_t* version, absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The worker holding the export of `job_id` (rank 0's, once the job COMPLETED with
  // checkpoint.export_safetensors); FAILED_PRECONDITION otherwise, UNAVAILABLE when that worker
  // is not connected.
  absl::StatusOr<std::string> ExportWorker(const std::string& job_id, const std::string& owner)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Orders `worker_id` to upload the export of `job_id` as transfer `transfer_id`.
  absl::Status RequestUpload(const std::string& job_id, const std::string& worker_id,
                             int64_t transfer_id) ABSL_LOCKS_EXCLUDED(mu_);

  // Workers (WorkerService). Every report about a rank of the current attempt is accepted only
  // from the worker that rank is placed on (PERMISSION_DENIED otherwise); a report about a
  // superseded attempt is acknowledged as stale.
  //
  // A worker's assignment stream opened: returns its generation (a newer stream supersedes
  // older ones: one live stream per worker) and re-queues every order the worker has not acted
  // on yet (starts of ranks it never reported, stops of ranks that have not exited), so no
  // order is lost with a stream that broke.
  int64_t OpenAssignments(const std::string& worker_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Orders for `worker_id`, waiting up to `timeout` for at least one; ABORTED once `generation`
  // is superseded by a newer stream.
  absl::StatusOr<std::vector<v1::Assignment>> TakeAssignments(const std::string& worker_id,
                                                              int64_t generation,
                                                              absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Rank 0's progress becomes the job's (stored). The latest evaluation stays until a report
  // carries a newer one (a new attempt's first reports carry none); each evaluation updates
  // Job.eval_metrics, latest and best per metric (eval_summary.h).
  absl::StatusOr<v1::ReportAck> OnProgress(const v1::ProgressReport& report)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ReportAck> OnRankExit(const v1::RankExit& exit) ABSL_LOCKS_EXCLUDED(mu_);
  // A committed checkpoint of the current attempt becomes the job's latest_checkpoint and joins
  // Job.checkpoints (the newest checkpoint.keep_last; stored, logged). INVALID_ARGUMENT for a step
  // outside [0, max_steps]; a report for a superseded attempt is acknowledged as stale.
  absl::StatusOr<v1::ReportAck> OnCheckpoint(const v1::CheckpointReport& report)
      ABSL_LOCKS_EXCLUDED(mu_);
  // ZO step-log records of the current attempt, persisted before the ack; a restarted attempt
  // gets them (StartRank.replay) and rebuilds the weights from the job's initial model. A
  // record that differs from the one stored for its step is ALREADY_EXISTS (identical resends
  // are fine); steps beyond training.max_steps are INVALID_ARGUMENT.
  absl::StatusOr<v1::StepLogAck> OnStepLog(const v1::StepLogReport& report)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A worker's heartbeat: the ranks it runs (re-adopts them after a coordinator restart, and
  // stops ranks of attempts the coordinator no longer wants).
  void OnHeartbeat(const std::string& worker_id, const std::vector<v1::RunningRank>& running)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Federated jobs (RoundManager): a round ended — progress (the round, the mean local loss
  // when it closed), a log line, and COMPLETED after the last round.
  absl::Status OnFederatedRound(const std::string& job_id, int64_t round, double mean_loss,
                                const std::string& line, bool finished) ABSL_LOCKS_EXCLUDED(mu_);

  // Whether `worker_id` holds a rank of the attempt a rendezvous prefix ("<job>/<attempt>")
  // names, and that attempt is current: only such a worker may use the prefix's keys.
  bool PlacedInAttempt(const std::string& prefix, const std::string& worker_id) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Operators. Cordons (or uncordons) the registered worker `worker`; NOT_FOUND for a name the
  // registry does not know.
  absl::Status SetCordoned(const std::string& worker, bool cordoned) ABSL_LOCKS_EXCLUDED(mu_);
  // Cordons `worker` and moves every job with a rank there elsewhere, checkpointing first;
  // returns the ids of the jobs being moved. A worker draining itself (`leaving`: it is shutting
  // down) is kept off the schedule only until it registers again, not cordoned in the store.
  absl::StatusOr<std::vector<std::string>> Drain(const std::string& worker, const std::string& by,
                                                 bool leaving = false) ABSL_LOCKS_EXCLUDED(mu_);
  // A worker (re)registered: it is no longer leaving.
  void OnRegister(const std::string& worker) ABSL_LOCKS_EXCLUDED(mu_);
  std::set<std::string> Cordoned() const ABSL_LOCKS_EXCLUDED(mu_);
  // The jobs of `owner` (every job for ""): all unfinished ones and the newest `recent_finished`
  // finished ones, in submission order.
  std::vector<JobView> Dashboard(const std::string& owner, size_t recent_finished) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Schedules queued jobs and handles lost workers and timeouts. Called periodically.
  void Tick() ABSL_LOCKS_EXCLUDED(mu_);

  // The coordinator's metrics (docs/metrics.md): jobs by state, workers, and the latest
  // progress of every job that holds workers.
  void CollectMetrics(MetricsWriter* out) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // One rank of the current attempt, as the coordinator knows it.
  struct Rank {
    bool started = false;  // The worker reported it (progress, heartbeat).
    bool exited = false;
    bool completed = false;
  };
  struct Entry {
    StoredJob stored;
    std::vector<Rank> ranks;  // Current attempt.
    absl::Time adopt_deadline = absl::InfiniteFuture();
    absl::Time stop_deadline = absl::InfiniteFuture();
    std::deque<v1::LogLine> logs;
    std::deque<CurvePoint> curve;  // In memory only: starts empty after a coordinator restart.
    int64_t next_log_sequence = 1;
    int64_t version = 0;
  };

  explicit JobManager(Options options) : options_(std::move(options)) {}
  absl::Status Load() ABSL_LOCKS_EXCLUDED(mu_);
  // Cancel (graceful: ranks checkpoint first) and Kill.
  absl::StatusOr<v1::Job> Stop(const std::string& job_id, const std::string& why,
                               const std::string& owner, bool graceful) ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<Entry*> FindLocked(const std::string& job_id, const std::string& owner)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Persists the job and wakes waiters.
  void SaveLocked(Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetStateLocked(Entry& e, v1::JobState to, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LogLocked(Entry& e, v1::LogLevel level, const std::string& text, int rank,
                 const std::string& worker_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SendLocked(const std::string& worker_id, v1::Assignment assignment)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stop orders for every rank of the current attempt that has not exited.
  void StopRanksLocked(Entry& e, bool graceful, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A rank or worker failed: restart the group (back to QUEUED) or give up (ERROR).
  void FailLocked(Entry& e, const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds a point to the job's curve (halving its resolution when full).
  void AddCurvePointLocked(Entry& e, const CurvePoint& point) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves STOPPING_* jobs whose ranks all exited to their terminal state, and drained
  // (RESTARTING) ones back to the queue.
  void FinishStoppingLocked(Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The entry for a report about `ref`, or null when the attempt is not current (stale).
  Entry* CurrentLocked(const v1::RankRef& ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // CurrentLocked, and PERMISSION_DENIED when the rank is not placed on `worker_id`.
  absl::StatusOr<Entry*> ReporterLocked(const v1::RankRef& ref, const std::string& worker_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // RESOURCE_EXHAUSTED when `owner`'s unfinished jobs plus `spec` exceed the owner's quota.
  absl::Status CheckQuotaLocked(const v1::JobSpec& spec, const std::string& owner) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The StartRank order of rank `placement` of the job's current attempt.
  v1::Assignment StartOrderLocked(Entry& e, const v1::RankPlacement& placement)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> jobs_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> cordoned_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> leaving_ ABSL_GUARDED_BY(mu_);  // Drained themselves; not stored.
  std::map<std::string, std::deque<v1::Assignment>> assignments_ ABSL_GUARDED_BY(mu_);
  // The generation of each worker's live assignment stream.
  std::map<std::string, int64_t> streams_ ABSL_GUARDED_BY(mu_);
  int64_t next_stream_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t next_assignment_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t version_ ABSL_GUARDED_BY(mu_) = 0;  // Bumped on every change (waiters).
};

// Whether a job in `state` still holds its placements (its ranks may be running).
bool HoldsResources(v1::JobState state);

}  // namespace strata

#endif  // STRATA_SERVICES_COORDINATOR_JOB_MANAGER_H_
