// Runs job ranks for the worker daemon: each StartRank becomes a RunConfig (BuildRunConfig,
// written as run-config-a<attempt>-r<rank>.textproto in the job's directory) and a
// `strata-train --run_config=FILE` child process
// (its own process group, killed with the daemon through PR_SET_PDEATHSIG, so a crash in
// training never takes the daemon down and a dead daemon leaves no orphan writing checkpoints).
// The child writes typed RankReport records on a pipe of their own (--report_fd): progress with
// the lr it used, evaluations, ZO step records, checkpoints and why it ended. They are forwarded
// to the coordinator (ReportProgress, ReportStepLog, ReportCheckpoint, ReportRankExit) without
// parsing any text; its stdout and stderr lines go to the rank's log file and the job's log.
// StopRank sends SIGTERM (graceful; SIGKILL after the grace period) or SIGKILL.
#ifndef STRATA_SERVICES_WORKER_RANK_RUNNER_H_
#define STRATA_SERVICES_WORKER_RANK_RUNNER_H_

#include <sys/types.h>

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/strata/v1/worker_service.grpc.pb.h"
#include "services/common/child_process.h"
#include "services/common/metrics.h"
#include "services/jobspec/run_config_builder.h"

namespace strata {

class RankRunner {
 public:
  struct Options {
    std::string train_binary;  // Path of strata-train.
    // Resolved (realpath) roots of the storage model (services/jobspec/job_paths.h): a job's
    // directory is work_dir/users/<owner>/jobs/<job_id>; it reads under data_roots or its
    // owner's area; its offload scratch goes in nvme_paths/strata-<job>-a<attempt>-r<rank>,
    // removed when the rank ends.
    std::string work_dir;
    std::vector<std::string> data_roots;
    std::vector<std::string> data_roots_as_given;  // As configured (WorkerRoots).
    std::vector<std::string> nvme_paths;
    std::string host = "127.0.0.1";  // Where this worker's ranks listen for collectives.
    // The coordinator multi-rank jobs meet through (RunConfig.rendezvous), how to reach it,
    // and the token the ranks present (in STRATA_WORKER_TOKEN, never on the command line).
    std::string coordinator;
    std::string tls_ca;
    bool insecure = false;
    std::string worker_token;
    absl::Duration stop_grace = absl::Seconds(30);
    absl::Duration report_interval = absl::Seconds(1);
    std::function<absl::Time()> clock = [] { return absl::Now(); };
  };

  // `stub` talks to the coordinator and must outlive the runner.
  RankRunner(Options options, v1::WorkerService::StubInterface* stub)
      : options_(std::move(options)), stub_(stub) {}
  ~RankRunner();  // Kills every child and waits for the reporters.

  // Follows the coordinator's assignment stream for `worker_id()` (re-opened after errors)
  // on a background thread until the runner is destroyed.
  void FollowAssignments(std::function<std::string()> worker_id);

  absl::Status Start(const v1::StartRank& start, const std::string& worker_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Stop(const v1::StopRank& stop) ABSL_LOCKS_EXCLUDED(mu_);
  // Sends the job's export to the coordinator on a thread of its own (export_uploader.h).
  void Upload(const v1::UploadExport& order, const std::string& worker_id) ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<v1::RunningRank> Running() const ABSL_LOCKS_EXCLUDED(mu_);
  // The worker's metrics: ranks running, and per running rank its step-time histogram.
  void CollectMetrics(MetricsWriter* out) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Child {
    v1::RankRef ref;
    // Signalled and reaped only under mu_ (so never after its pid could be reused); empty once
    // reaped.
    std::optional<ChildProcess> process;
    absl::Time start_time;
    bool stop_requested = false;
    // A graceful stop's deadline: the reporter sends SIGKILL when it passes.
    absl::Time kill_at = absl::InfiniteFuture();
    // Seconds per optimizer step, observed between progress reports.
    Histogram step_seconds{{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
    int64_t step = 0;
    std::vector<std::string> scratch_dirs;  // Removed once the rank has exited.
    std::thread reporter;
    std::atomic<bool> reported{false};  // The reporter is done (exit reported): join and drop.
  };
  static std::string Key(const v1::RankRef& ref);
  // The placement of `start` on this worker (its directories made) and, in *spec, its spec with
  // every path resolved and checked against this worker's roots.
  absl::StatusOr<RankSite> SiteFor(const v1::StartRank& start, v1::JobSpec* spec) const;
  // Reads the child's output and reports until both end, forwards them, reaps the child and
  // reports its exit.
  void Report(Child* child, int log_fd, int report_fd, const std::string& worker_id,
              const std::string& log_path);
  // Sends `signal` to the child's process group unless it is already reaped.
  void SignalLocked(Child& child, int signal) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReportExit(const v1::RankRef& ref, const std::string& worker_id, int status,
                  bool stop_requested, const std::string& last_error);

  const Options options_;
  v1::WorkerService::StubInterface* stub_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Child>> children_ ABSL_GUARDED_BY(mu_);
  // Keys of ranks that ran here and were forgotten, so a resent start does not run them again.
  static constexpr size_t kRememberedRanks = 4096;
  std::set<std::string> finished_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> finished_order_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<grpc::ClientContext> assignments_context_ ABSL_GUARDED_BY(mu_);
  struct UploadThread {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<UploadThread> uploads_ ABSL_GUARDED_BY(mu_);
  std::thread assignments_;
};

}  // namespace strata

#endif  // STRATA_SERVICES_WORKER_RANK_RUNNER_H_
