// See rank_runner.h.
#include "services/worker/rank_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/time_util.h"
#include "runtime/base/errno_status.h"
#include "runtime/base/logging.h"
#include "runtime/base/status_macros.h"
#include "runtime/zo/step_log.h"
#include "services/common/report_channel.h"
#include "services/jobspec/job_paths.h"
#include "services/worker/export_uploader.h"
#include "services/worker/rank_reporter.h"
#include "storage/atomic_file.h"

namespace strata {
namespace {

using google::protobuf::util::TimeUtil;

// The descriptor a rank writes its typed reports to.
constexpr int kReportFd = 3;

}  // namespace

absl::StatusOr<RankSite> RankRunner::SiteFor(const v1::StartRank& start, v1::JobSpec* spec) const {
  // Names from the coordinator become directory names: checked, not trusted.
  const std::string& job_id = start.ref().job_id();
  if (!IsSafePathComponent(job_id)) {
    return absl::InvalidArgumentError(absl::StrCat("job id \"", job_id, "\" is not a safe name"));
  }
  if (!start.owner().empty() && !IsSafePathComponent(start.owner())) {
    return absl::InvalidArgumentError(
        absl::StrCat("owner \"", start.owner(), "\" is not a safe name"));
  }
  WorkerRoots roots;
  roots.owner_area = OwnerArea(options_.work_dir, start.owner());
  roots.data_roots = options_.data_roots;
  roots.data_roots_as_given = options_.data_roots_as_given;
  STRATA_RETURN_IF_ERROR(MakeDirs(roots.owner_area));
  STRATA_ASSIGN_OR_RETURN(*spec, ResolveSpecPaths(start.spec(), roots));
  RankSite site;
  site.job_id = job_id;
  site.attempt = start.ref().attempt();
  site.rank = start.ref().rank();
  site.world_size = start.world_size();
  site.job_dir = absl::StrCat(roots.owner_area, "/jobs/", job_id);
  for (const std::string& p : options_.nvme_paths) {
    site.nvme_dirs.push_back(
        absl::StrCat(p, "/strata-", job_id, "-a", start.ref().attempt(), "-r", start.ref().rank()));
  }
  site.gpu_indices.assign(start.gpu_indices().begin(), start.gpu_indices().end());
  if (start.world_size() > 1 && !options_.coordinator.empty()) {
    // The ranks meet through the coordinator's store, one prefix per attempt.
    site.rendezvous.set_coordinator(options_.coordinator);
    site.rendezvous.set_tls_ca(options_.tls_ca);
    site.rendezvous.set_insecure(options_.insecure);
  }
  site.rendezvous.set_prefix(start.rendezvous_prefix());
  site.rendezvous.set_host(options_.host);
  STRATA_RETURN_IF_ERROR(MakeDirs(site.job_dir));
  for (const std::string& d : site.nvme_dirs) {
    STRATA_RETURN_IF_ERROR(MakeDirs(d));
  }
  return site;
}

std::string RankRunner::Key(const v1::RankRef& ref) {
  return absl::StrCat(ref.job_id(), "/", ref.attempt(), "/", ref.rank());
}

RankRunner::~RankRunner() {
  std::vector<std::thread> reporters;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    if (assignments_context_ != nullptr) assignments_context_->TryCancel();
    for (auto& [key, child] : children_) SignalLocked(*child, SIGKILL);
  }
  if (assignments_.joinable()) assignments_.join();
  std::vector<UploadThread> uploads;
  {
    absl::MutexLock lock(&mu_);
    uploads.swap(uploads_);
  }
  for (UploadThread& u : uploads) u.thread.join();
  {
    absl::MutexLock lock(&mu_);
    for (auto& [key, child] : children_) reporters.push_back(std::move(child->reporter));
  }
  for (std::thread& t : reporters) {
    if (t.joinable()) t.join();
  }
}

void RankRunner::FollowAssignments(std::function<std::string()> worker_id) {
  assignments_ = std::thread([this, worker_id = std::move(worker_id)] {
    absl::Duration backoff = absl::Milliseconds(200);
    while (true) {
      const std::string id = worker_id();
      auto context = std::make_shared<grpc::ClientContext>();
      {
        absl::MutexLock lock(&mu_);
        if (shutting_down_) return;
        assignments_context_ = context;
      }
      if (!id.empty()) {
        v1::AssignmentsRequest request;
        request.set_worker_id(id);
        std::unique_ptr<grpc::ClientReaderInterface<v1::Assignment>> reader =
            stub_->Assignments(context.get(), request);
        v1::Assignment a;
        while (reader->Read(&a)) {
          backoff = absl::Milliseconds(200);
          if (a.has_start()) {
            if (absl::Status status = Start(a.start(), id); !status.ok()) {
              STRATA_LOG(ERROR) << "start " << Key(a.start().ref()) << ": " << status;
              v1::RankExit exit;
              *exit.mutable_ref() = a.start().ref();
              exit.set_worker_id(id);
              exit.set_exit_code(-1);
              exit.set_error(std::string(status.message()));
              grpc::ClientContext ctx;
              ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
              v1::ReportAck ack;
              stub_->ReportRankExit(&ctx, exit, &ack);
            }
          } else if (a.has_stop()) {
            Stop(a.stop());
          } else if (a.has_upload()) {
            Upload(a.upload(), id);
          }
        }
        reader->Finish();
      }
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shutting_down_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping), backoff)) return;
      backoff = std::min(backoff * 2, absl::Seconds(5));
    }
  });
}

absl::Status RankRunner::Start(const v1::StartRank& start, const std::string& worker_id) {
  const std::string key = Key(start.ref());
  std::vector<std::thread> finished;
  {
    absl::MutexLock lock(&mu_);
    // A resent order (the coordinator re-sends what a broken stream may have lost): a rank
    // that runs or ran here is never started twice.
    if (children_.count(key) != 0 || finished_.count(key) != 0) return absl::OkStatus();
    // Forget ranks whose exit is reported, so a long-lived daemon keeps no dead threads; their
    // keys are remembered (the newest kRememberedRanks).
    for (auto it = children_.begin(); it != children_.end();) {
      if (it->second->reported.load()) {
        finished.push_back(std::move(it->second->reporter));
        finished_.insert(it->first);
        finished_order_.push_back(it->first);
        if (finished_order_.size() > kRememberedRanks) {
          finished_.erase(finished_order_.front());
          finished_order_.pop_front();
        }
        it = children_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (std::thread& t : finished) t.join();
  v1::JobSpec spec;  // start.spec() with every path resolved on this worker.
  absl::StatusOr<RankSite> site = SiteFor(start, &spec);
  if (!site.ok()) return site.status();
  if (start.replay_size() > 0) {
    // A restarted ZO attempt: the coordinator's step log, which the trainer replays from the
    // initial weights when the checkpoint directory holds no trace of the run (ZoTrainer).
    site->replay_log =
        absl::StrCat(site->job_dir, "/replay-attempt", start.ref().attempt(), ".bin");
    unlink(site->replay_log.c_str());
    absl::StatusOr<std::unique_ptr<zo::StepLogWriter>> writer = zo::StepLogWriter::Open(
        site->replay_log, start.spec().optimizer().zeroth_order().num_perturbations());
    if (!writer.ok()) return writer.status();
    for (const v1::ZoStepRecord& r : start.replay()) {
      zo::ZoStepRecord record;
      record.step = r.step();
      record.seed = r.seed();
      record.lr = r.lr();
      record.loss = static_cast<float>(r.loss());
      record.skipped = r.skipped();
      for (double g : r.projected_grads()) record.scalars.push_back(static_cast<float>(g));
      STRATA_RETURN_IF_ERROR((*writer)->Append(record, /*sync=*/false));
    }
    STRATA_RETURN_IF_ERROR((*writer)->Sync());
  }
  absl::StatusOr<v1::RunConfig> run = BuildRunConfig(spec, *site);
  if (!run.ok()) return run.status();
  const std::string config_path =
      absl::StrCat(site->job_dir, "/run-config-a", start.ref().attempt(), "-r", start.ref().rank(),
                   ".textproto");
  std::string config_text;
  google::protobuf::TextFormat::PrintToString(*run, &config_text);
  STRATA_RETURN_IF_ERROR(WriteStringToFileAtomically(config_path, config_text));
  std::vector<std::string> argv = {options_.train_binary, "--run_config=" + config_path,
                                   absl::StrCat("--report_fd=", kReportFd)};
  STRATA_LOG(INFO) << "starting " << key << ": " << absl::StrJoin(argv, " ");
  // The rank's environment: the daemon's, with the worker token for the coordinator's store.
  ChildProcess::Options spawn;
  spawn.argv = std::move(argv);
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "STRATA_WORKER_TOKEN=")) spawn.env.emplace_back(*e);
  }
  if (!options_.worker_token.empty()) {
    spawn.env.push_back("STRATA_WORKER_TOKEN=" + options_.worker_token);
  }
  spawn.cwd = site->job_dir;
  // Two pipes: the rank's human-readable output (stdout and stderr), and its typed reports on
  // fd kReportFd (strata-train --report_fd).
  int out_fds[2], report_fds[2];
  if (pipe2(out_fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  if (pipe2(report_fds, O_CLOEXEC) != 0) {
    const absl::Status s = ErrnoStatus(errno, "pipe");
    close(out_fds[0]);
    close(out_fds[1]);
    return s;
  }
  spawn.fds = {
      {STDOUT_FILENO, out_fds[1]}, {STDERR_FILENO, out_fds[1]}, {kReportFd, report_fds[1]}};
  absl::StatusOr<ChildProcess> process = ChildProcess::Start(spawn);
  close(out_fds[1]);
  close(report_fds[1]);
  if (!process.ok()) {
    close(out_fds[0]);
    close(report_fds[0]);
    return process.status();
  }
  absl::MutexLock lock(&mu_);
  auto child = std::make_unique<Child>();
  child->ref = start.ref();
  child->process = *std::move(process);
  child->start_time = options_.clock();
  child->scratch_dirs = site->nvme_dirs;
  Child* raw = child.get();
  child->reporter =
      std::thread([this, raw, log_fd = out_fds[0], report_fd = report_fds[0], worker_id,
                   log = site->job_dir + absl::StrCat("/rank", start.ref().rank(), ".log")] {
        Report(raw, log_fd, report_fd, worker_id, log);
      });
  children_[key] = std::move(child);
  return absl::OkStatus();
}

void RankRunner::Upload(const v1::UploadExport& order, const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  // Forget uploads that ended, then send this one beside the assignment stream.
  for (auto it = uploads_.begin(); it != uploads_.end();) {
    if (it->done->load()) {
      it->thread.join();
      it = uploads_.erase(it);
    } else {
      ++it;
    }
  }
  auto done = std::make_shared<std::atomic<bool>>(false);
  uploads_.push_back({std::thread([this, order, worker_id, done] {
                        const absl::Status s =
                            UploadExportFiles(stub_, options_.work_dir, worker_id, order);
                        if (!s.ok()) {
                          STRATA_LOG(WARNING) << "export of " << order.job_id() << ": " << s;
                        }
                        done->store(true);
                      }),
                      done});
}

void RankRunner::Stop(const v1::StopRank& stop) {
  absl::MutexLock lock(&mu_);
  auto it = children_.find(Key(stop.ref()));
  if (it == children_.end() || !it->second->process.has_value()) return;
  Child& child = *it->second;
  child.stop_requested = true;
  STRATA_LOG(INFO) << "stopping " << Key(stop.ref()) << (stop.graceful() ? " (graceful)" : "")
                   << ": " << stop.reason();
  SignalLocked(child, stop.graceful() ? SIGTERM : SIGKILL);
  // The rank's reporter sends SIGKILL if it is still running then.
  if (stop.graceful())
    child.kill_at = std::min(child.kill_at, options_.clock() + options_.stop_grace);
}

void RankRunner::SignalLocked(Child& child, int signal) {
  if (child.process.has_value()) child.process->SignalGroup(signal);
}

std::vector<v1::RunningRank> RankRunner::Running() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::RunningRank> running;
  for (const auto& [key, child] : children_) {
    if (!child->process.has_value()) continue;
    v1::RunningRank r;
    *r.mutable_ref() = child->ref;
    r.set_pid(child->process->pid());
    *r.mutable_start_time() =
        TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(child->start_time));
    running.push_back(std::move(r));
  }
  return running;
}

void RankRunner::CollectMetrics(MetricsWriter* out) const {
  absl::MutexLock lock(&mu_);
  int running = 0;
  for (const auto& [key, child] : children_) {
    if (!child->process.has_value()) continue;
    ++running;
    const MetricLabels labels = {{"job_id", child->ref.job_id()},
                                 {"rank", std::to_string(child->ref.rank())}};
    out->WriteHistogram("strata_train_step_duration_seconds",
                        "Wall time per optimizer step of a rank on this worker.", labels,
                        child->step_seconds);
    out->Gauge("strata_rank_step", "Latest step a rank on this worker reported.", labels,
               static_cast<double>(child->step));
  }
  out->Gauge("strata_worker_ranks_running", "Job ranks running on this worker.", {}, running);
}

void RankRunner::Report(Child* child, int log_fd, int report_fd, const std::string& worker_id,
                        const std::string& log_path) {
  std::ofstream log(log_path, std::ios::app);
  RankReporter reporter(child->ref, worker_id);
  GrpcReportSink sink(stub_);
  ReportDecoder decoder;
  std::string text;
  absl::Time last_sent = options_.clock(), last_step_time = options_.clock();
  const auto on_text = [&](absl::string_view bytes) {
    text.append(bytes.data(), bytes.size());
    size_t newline;
    while ((newline = text.find('\n')) != std::string::npos) {
      const std::string line = text.substr(0, newline);
      text.erase(0, newline + 1);
      log << line << '\n';
      reporter.OnLine(line);
    }
  };
  const auto on_record = [&](const v1::RankReport& record) {
    reporter.OnRecord(record);
    if (!record.has_progress()) return;
    const absl::Time now = options_.clock();
    absl::MutexLock lock(&mu_);
    const int64_t step = record.progress().step();
    if (step > child->step && child->step > 0) {
      child->step_seconds.Observe(
          absl::ToDoubleSeconds(now - last_step_time) / static_cast<double>(step - child->step),
          static_cast<uint64_t>(step - child->step));
    }
    if (step != child->step) last_step_time = now;
    child->step = step;
  };
  pollfd fds[2] = {{log_fd, POLLIN, 0}, {report_fd, POLLIN, 0}};
  char chunk[4096];
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    absl::Duration wait = options_.report_interval;
    {
      // A graceful stop that ran out of time.
      absl::MutexLock lock(&mu_);
      const absl::Time now = options_.clock();
      if (now >= child->kill_at) {
        SignalLocked(*child, SIGKILL);
        child->kill_at = absl::InfiniteFuture();
      }
      wait = std::min(wait, child->kill_at - now);
    }
    const int ready = poll(fds, 2, static_cast<int>(absl::ToInt64Milliseconds(wait)) + 1);
    if (ready < 0 && errno != EINTR) break;
    for (pollfd& p : fds) {
      if (ready <= 0 || p.fd < 0 || (p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t n = read(p.fd, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        close(p.fd);
        p.fd = -1;
        continue;
      }
      if (&p == &fds[0]) {
        on_text(absl::string_view(chunk, n));
        continue;
      }
      absl::StatusOr<std::vector<v1::RankReport>> records =
          decoder.Feed(absl::string_view(chunk, n));
      if (!records.ok()) {
        // A rank that writes something else on its report channel is not trusted any further.
        STRATA_LOG(ERROR) << Key(child->ref) << ": " << records.status() << "; stopping it";
        reporter.ChannelFailed(std::string(records.status().message()));
        absl::MutexLock lock(&mu_);
        SignalLocked(*child, SIGKILL);
        close(p.fd);
        p.fd = -1;
        continue;
      }
      for (const v1::RankReport& record : *records) on_record(record);
    }
    if (options_.clock() - last_sent >= options_.report_interval ||
        reporter.pending_lines() > 200) {
      if (reporter.Flush(sink)) {
        STRATA_LOG(WARNING) << Key(child->ref) << " is stale: stopping it";
        absl::MutexLock lock(&mu_);
        SignalLocked(*child, SIGKILL);
      }
      last_sent = options_.clock();
    }
  }
  if (!text.empty()) on_text("\n");
  log.flush();
  reporter.Flush(sink);
  // Exited (the pipes closed with it, or it closed them): reap it under the lock, so no signal
  // can reach a reused pid.
  if (absl::Status s = child->process->AwaitExit(); !s.ok()) {
    STRATA_LOG(ERROR) << s;
  }
  int status = 0;
  bool stop_requested;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<int> waited = child->process->Wait();
    status = waited.ok() ? *waited : 0;
    child->process.reset();
    stop_requested = child->stop_requested;
  }
  // The rank's offload files are scratch: nothing reads them after it ends.
  for (const std::string& dir : child->scratch_dirs) {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  ReportExit(child->ref, worker_id, status, stop_requested, reporter.exit_error());
  child->reported.store(true);
}

void RankRunner::ReportExit(const v1::RankRef& ref, const std::string& worker_id, int status,
                            bool stop_requested, const std::string& last_error) {
  v1::RankExit exit;
  *exit.mutable_ref() = ref;
  exit.set_worker_id(worker_id);
  if (WIFSIGNALED(status)) {
    exit.set_exit_code(-1);
    exit.set_signal(WTERMSIG(status));
  } else {
    exit.set_exit_code(WEXITSTATUS(status));
  }
  exit.set_completed(!stop_requested && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  if (!exit.completed() && !stop_requested) exit.set_error(last_error);
  STRATA_LOG(INFO) << Key(ref) << " exited: code " << exit.exit_code() << " signal "
                   << exit.signal();
  // The coordinator must hear about the exit: retry while it is unreachable.
  for (int attempt = 0; attempt < 60; ++attempt) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ReportAck ack;
    if (stub_->ReportRankExit(&ctx, exit, &ack).ok()) return;
    {
      absl::MutexLock lock(&mu_);
      if (shutting_down_) return;
    }
    absl::SleepFor(absl::Seconds(1));
  }
}

}  // namespace strata
