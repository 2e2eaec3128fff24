// See rank_runner.h.
#include "services/worker/rank_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/time_util.h"
#include "runtime/base/logging.h"
#include "runtime/zo/step_log.h"
#include "services/common/report_channel.h"
#include "storage/atomic_file.h"

namespace strata {
namespace {

using google::protobuf::util::TimeUtil;

// The descriptor a rank writes its typed reports to.
constexpr int kReportFd = 3;

}  // namespace

absl::StatusOr<RankSite> RankRunner::SiteFor(const v1::StartRank& start) const {
  RankSite site;
  site.job_id = start.ref().job_id();
  site.attempt = start.ref().attempt();
  site.rank = start.ref().rank();
  site.world_size = start.world_size();
  site.job_dir = absl::StrCat(options_.work_dir, "/jobs/", start.ref().job_id());
  for (const std::string& p : options_.nvme_paths) {
    site.nvme_dirs.push_back(
        absl::StrCat(p, "/", start.ref().job_id(), "-rank", start.ref().rank()));
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
  if (absl::Status s = MakeDirs(site.job_dir); !s.ok()) return s;
  for (const std::string& d : site.nvme_dirs) {
    if (absl::Status s = MakeDirs(d); !s.ok()) return s;
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
    for (auto& [key, child] : children_) {
      if (child->pid > 0) kill(-child->pid, SIGKILL);
    }
  }
  if (assignments_.joinable()) assignments_.join();
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
    if (children_.count(key) != 0) return absl::OkStatus();  // A resent order.
    // Forget ranks whose exit is reported, so a long-lived daemon keeps no dead threads.
    for (auto it = children_.begin(); it != children_.end();) {
      if (it->second->reported.load()) {
        finished.push_back(std::move(it->second->reporter));
        it = children_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (std::thread& t : finished) t.join();
  absl::StatusOr<RankSite> site = SiteFor(start);
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
      if (absl::Status s = (*writer)->Append(record, /*sync=*/false); !s.ok()) return s;
    }
    if (absl::Status s = (*writer)->Sync(); !s.ok()) return s;
  }
  absl::StatusOr<v1::RunConfig> run = BuildRunConfig(start.spec(), *site);
  if (!run.ok()) return run.status();
  const std::string config_path = absl::StrCat(site->job_dir, "/run-config-a",
                                               start.ref().attempt(), "-r", start.ref().rank(),
                                               ".textproto");
  std::string config_text;
  google::protobuf::TextFormat::PrintToString(*run, &config_text);
  if (absl::Status s = WriteStringToFileAtomically(config_path, config_text); !s.ok()) return s;
  std::vector<std::string> argv = {options_.train_binary, "--run_config=" + config_path,
                                   absl::StrCat("--report_fd=", kReportFd)};
  STRATA_LOG(INFO) << "starting " << key << ": " << absl::StrJoin(argv, " ");
  // The rank's environment: the daemon's, with the worker token for the coordinator's store
  // (built before fork: the child only execs).
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "STRATA_WORKER_TOKEN=")) env.emplace_back(*e);
  }
  if (!options_.worker_token.empty()) env.push_back("STRATA_WORKER_TOKEN=" + options_.worker_token);
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> cargs;
  for (std::string& a : argv) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  // Two pipes: the rank's human-readable output (stdout and stderr), and its typed reports on
  // fd kReportFd (strata-train --report_fd).
  int pipe_fds[2], report_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  if (pipe2(report_fds, O_CLOEXEC) != 0) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return absl::InternalError("pipe failed");
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // The daemon died before prctl.
    // Signals the daemon blocks (for its own sigwait) must not stay blocked in training.
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_UNBLOCK, &all, nullptr);
    dup2(pipe_fds[1], STDOUT_FILENO);
    dup2(pipe_fds[1], STDERR_FILENO);
    if (report_fds[1] == kReportFd) {
      fcntl(kReportFd, F_SETFD, 0);  // Keep it across exec.
    } else {
      dup2(report_fds[1], kReportFd);
    }
    if (chdir(site->job_dir.c_str()) != 0) _exit(126);
    execve(cargs[0], cargs.data(), envp.data());
    std::fprintf(stderr, "exec %s: %s\n", cargs[0], std::strerror(errno));
    _exit(127);
  }
  close(pipe_fds[1]);
  close(report_fds[1]);
  absl::MutexLock lock(&mu_);
  auto child = std::make_unique<Child>();
  child->ref = start.ref();
  child->pid = pid;
  child->start_time = absl::Now();
  Child* raw = child.get();
  child->reporter =
      std::thread([this, raw, log_fd = pipe_fds[0], report_fd = report_fds[0], worker_id,
                   log = site->job_dir + absl::StrCat("/rank", start.ref().rank(), ".log")] {
        Report(raw, log_fd, report_fd, worker_id, log);
      });
  children_[key] = std::move(child);
  return absl::OkStatus();
}

void RankRunner::Stop(const v1::StopRank& stop) {
  pid_t pid = 0;
  {
    absl::MutexLock lock(&mu_);
    auto it = children_.find(Key(stop.ref()));
    if (it == children_.end() || it->second->pid <= 0) return;
    it->second->stop_requested = true;
    pid = it->second->pid;
  }
  STRATA_LOG(INFO) << "stopping " << Key(stop.ref()) << (stop.graceful() ? " (graceful)" : "")
                   << ": " << stop.reason();
  kill(-pid, stop.graceful() ? SIGTERM : SIGKILL);
  if (stop.graceful()) {
    std::shared_ptr<std::atomic<bool>> alive;
    {
      absl::MutexLock lock(&mu_);
      auto it = children_.find(Key(stop.ref()));
      if (it == children_.end()) return;
      alive = it->second->alive;
    }
    std::thread([pid, alive, grace = options_.stop_grace] {
      const absl::Time deadline = absl::Now() + grace;
      while (alive->load() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(100));
      if (alive->load()) kill(-pid, SIGKILL);
    }).detach();
  }
}

std::vector<v1::RunningRank> RankRunner::Running() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::RunningRank> running;
  for (const auto& [key, child] : children_) {
    if (child->pid <= 0) continue;
    v1::RunningRank r;
    *r.mutable_ref() = child->ref;
    r.set_pid(child->pid);
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
    if (child->pid <= 0) continue;
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
  v1::ProgressReport pending;
  *pending.mutable_ref() = child->ref;
  pending.set_worker_id(worker_id);
  pending.mutable_progress()->set_eval_loss(std::nan(""));
  absl::Time last_sent = absl::Now(), last_step_time = absl::Now();
  std::string text, last_line, final_error;
  bool final_seen = false;
  ReportDecoder decoder;
  std::vector<v1::ZoStepRecord> steps;              // Not yet acknowledged by the coordinator.
  std::vector<v1::CheckpointInfo> checkpoints;      // Likewise.
  auto send = [&] {
    if (!steps.empty()) {
      v1::StepLogReport report;
      *report.mutable_ref() = child->ref;
      for (const v1::ZoStepRecord& r : steps) *report.add_records() = r;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      v1::StepLogAck ack;
      if (stub_->ReportStepLog(&ctx, report, &ack).ok()) steps.clear();  // Else: sent again.
    }
    while (!checkpoints.empty()) {
      v1::CheckpointReport report;
      *report.mutable_ref() = child->ref;
      report.set_worker_id(worker_id);
      *report.mutable_checkpoint() = checkpoints.front();
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      v1::ReportAck ack;
      if (!stub_->ReportCheckpoint(&ctx, report, &ack).ok()) break;  // Sent again later.
      checkpoints.erase(checkpoints.begin());
    }
    if (pending.logs().empty() && !pending.has_progress()) return;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ReportAck ack;
    const grpc::Status status = stub_->ReportProgress(&ctx, pending, &ack);
    if (status.ok() && ack.stale()) {
      STRATA_LOG(WARNING) << Key(child->ref) << " is stale: stopping it";
      absl::MutexLock lock(&mu_);
      kill(-child->pid, SIGKILL);
    }
    pending.clear_logs();
    last_sent = absl::Now();
  };
  auto on_report = [&](const v1::RankReport& r) {
    switch (r.report_case()) {
      case v1::RankReport::kProgress: {
        const double eval_loss = pending.progress().eval_loss();
        *pending.mutable_progress() = r.progress();
        pending.mutable_progress()->set_eval_loss(eval_loss);
        const absl::Time now = absl::Now();
        absl::MutexLock lock(&mu_);
        const int64_t step = r.progress().step();
        if (step > child->step && child->step > 0) {
          child->step_seconds.Observe(
              absl::ToDoubleSeconds(now - last_step_time) / static_cast<double>(step - child->step),
              static_cast<uint64_t>(step - child->step));
        }
        if (step != child->step) last_step_time = now;
        child->step = step;
        break;
      }
      case v1::RankReport::kEval:
        pending.mutable_progress()->set_eval_loss(r.eval().loss());
        break;
      case v1::RankReport::kZoStep:
        steps.push_back(r.zo_step());
        break;
      case v1::RankReport::kCheckpoint:
        checkpoints.push_back(r.checkpoint());
        break;
      case v1::RankReport::kFinal:
        final_seen = true;
        final_error = r.final().error();
        break;
      case v1::RankReport::REPORT_NOT_SET:
        break;
    }
  };
  auto on_text = [&](absl::string_view bytes) {
    text.append(bytes.data(), bytes.size());
    size_t newline;
    while ((newline = text.find('\n')) != std::string::npos) {
      std::string line = text.substr(0, newline);
      text.erase(0, newline + 1);
      log << line << '\n';
      v1::LogLine* l = pending.add_logs();
      l->set_text(line);
      l->set_level(absl::StartsWith(line, "strata-train: ") ? v1::LOG_LEVEL_ERROR
                                                            : v1::LOG_LEVEL_INFO);
      last_line = std::move(line);
    }
  };
  pollfd fds[2] = {{log_fd, POLLIN, 0}, {report_fd, POLLIN, 0}};
  char chunk[4096];
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    const int ready = poll(fds, 2, static_cast<int>(absl::ToInt64Milliseconds(
                                       options_.report_interval)));
    if (ready < 0 && errno == EINTR) continue;
    for (pollfd& p : fds) {
      if (p.fd < 0 || (p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
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
        // A rank that writes garbage on its report channel is not trusted any further.
        STRATA_LOG(ERROR) << Key(child->ref) << ": " << records.status() << "; stopping it";
        final_seen = true;
        final_error = std::string(records.status().message());
        absl::MutexLock lock(&mu_);
        kill(-child->pid, SIGKILL);
        close(p.fd);
        p.fd = -1;
        continue;
      }
      for (const v1::RankReport& r : *records) on_report(r);
    }
    if (absl::Now() - last_sent >= options_.report_interval || pending.logs_size() > 200) send();
  }
  if (!text.empty()) on_text("\n");
  log.flush();
  send();
  int status = 0;
  while (waitpid(child->pid, &status, 0) < 0 && errno == EINTR) {
  }
  bool stop_requested;
  {
    absl::MutexLock lock(&mu_);
    stop_requested = child->stop_requested;
    child->pid = 0;
    child->alive->store(false);
  }
  // The rank's own words when it said why it ended; else (a crash, a failed exec) its last line.
  ReportExit(child->ref, worker_id, status, stop_requested,
             final_seen ? final_error : last_line);
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
