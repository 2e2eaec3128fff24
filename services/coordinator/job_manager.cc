// See job_manager.h.
#include "services/coordinator/job_manager.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/time_util.h"
#include "runtime/base/logging.h"
#include "runtime/base/status_macros.h"
#include "services/coordinator/eval_summary.h"
#include "services/coordinator/placement.h"
#include "services/jobspec/job_paths.h"
#include "services/jobspec/job_spec.h"
#include "services/jobspec/run_config_builder.h"

namespace strata {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

std::string NewJobId() {
  static std::mt19937_64 rng(std::random_device{}());
  static absl::Mutex mu;
  absl::MutexLock lock(&mu);
  return absl::StrFormat("j-%010x", rng() & 0xFFFFFFFFFFull);
}

// Why `r` fits on none of the `idle` workers (their full capacity); nullopt when it fits or
// there are no workers (the job waits for them).
std::optional<std::string> NeverFits(const v1::Resources& r, std::vector<FreeCapacity> idle) {
  if (idle.empty() || PlaceGang(r, &idle).has_value()) return std::nullopt;
  return absl::StrCat(r.ranks(), " rank(s) of ", r.cores_per_rank(), " core(s), ",
                      r.memory_bytes_per_rank(), " bytes of memory, ", r.gpus_per_rank(),
                      " GPU(s) and ", r.nvme_bytes_per_rank(),
                      " NVMe bytes each (and the node_selector) fit on none of the ", idle.size(),
                      " live worker(s), even idle");
}

// The order stopping rank `rank` of the job's current attempt.
v1::Assignment StopOrder(const v1::Job& job, int rank, bool graceful, const std::string& reason) {
  v1::Assignment a;
  v1::StopRank* stop = a.mutable_stop();
  stop->mutable_ref()->set_job_id(job.id());
  stop->mutable_ref()->set_attempt(job.attempt());
  stop->mutable_ref()->set_rank(rank);
  stop->set_graceful(graceful);
  stop->set_reason(reason);
  return a;
}

}  // namespace

bool IsFederated(const v1::Job& job) {
  return job.spec().has_federated() && job.spec().federated().num_rounds() > 0;
}

bool HoldsResources(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_STARTING:
    case v1::JOB_STATE_RUNNING:
    case v1::JOB_STATE_RESTARTING:  // A drained job's ranks are checkpointing before they exit.
    case v1::JOB_STATE_STOPPING_COMPLETED:
    case v1::JOB_STATE_STOPPING_CANCELED:
    case v1::JOB_STATE_STOPPING_ERROR:
    case v1::JOB_STATE_STOPPING_KILLED:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(Options options) {
  if (options.store == nullptr || options.registry == nullptr) {
    return absl::InvalidArgumentError("JobManager needs a store and a worker registry");
  }
  std::unique_ptr<JobManager> manager(new JobManager(std::move(options)));
  if (absl::Status status = manager->Load(); !status.ok()) return status;
  return manager;
}

absl::Status JobManager::Load() {
  absl::StatusOr<std::vector<StoredJob>> all = options_.store->All();
  if (!all.ok()) return all.status();
  absl::StatusOr<std::set<std::string>> cordoned = options_.store->Cordoned();
  if (!cordoned.ok()) return cordoned.status();
  absl::MutexLock lock(&mu_);
  cordoned_ = *std::move(cordoned);
  const absl::Time now = options_.clock();
  for (StoredJob& stored : *all) {
    Entry& e = jobs_[stored.job.id()];
    e.stored = std::move(stored);
    const v1::JobState state = e.stored.job.state();
    if (IsTerminal(state)) continue;
    e.ranks.assign(e.stored.job.placements_size(), Rank());
    LogLocked(e, v1::LOG_LEVEL_INFO,
              absl::StrCat("coordinator restarted; recovering the job in ", StateName(state)), -1,
              "");
    if (state == v1::JOB_STATE_RESTARTING) {
      // Ranks a drain was stopping are no longer current: their workers are told to stop them.
      e.stored.job.clear_placements();
      e.ranks.clear();
      SetStateLocked(e, v1::JOB_STATE_QUEUED, "recovered while restarting: queued again");
    } else if (IsFederated(e.stored.job)) {
      // No ranks: the rounds carry on with the clients (RoundManager reads them back).
    } else if (HoldsResources(state)) {
      // Running ranks are re-adopted when their workers report them; otherwise restarted.
      e.adopt_deadline = now + options_.adopt_timeout;
      if (state == v1::JOB_STATE_STOPPING_CANCELED || state == v1::JOB_STATE_STOPPING_KILLED ||
          state == v1::JOB_STATE_STOPPING_ERROR) {
        StopRanksLocked(e, /*graceful=*/false, "stop resent after a coordinator restart");
        e.stop_deadline = now + options_.kill_grace;
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<JobManager::Entry*> JobManager::FindLocked(const std::string& job_id,
                                                          const std::string& owner) {
  auto it = jobs_.find(job_id);
  // Another user's job is reported exactly like a missing one.
  if (it == jobs_.end() || (!owner.empty() && it->second.stored.owner != owner)) {
    return absl::NotFoundError(absl::StrCat("no job ", job_id));
  }
  return &it->second;
}

void JobManager::SaveLocked(Entry& e) {
  if (absl::Status status = options_.store->Update(e.stored); !status.ok()) {
    STRATA_LOG(ERROR) << "job " << e.stored.job.id() << ": " << status;
  }
  e.version = ++version_;
}

void JobManager::LogLocked(Entry& e, v1::LogLevel level, const std::string& text, int rank,
                           const std::string& worker_id) {
  v1::LogLine line;
  *line.mutable_time() = ToProto(options_.clock());
  line.set_job_id(e.stored.job.id());
  line.set_rank(rank);
  line.set_attempt(e.stored.job.attempt());
  line.set_level(level);
  line.set_text(text);
  line.set_worker_id(worker_id);
  line.set_sequence(e.next_log_sequence++);
  e.logs.push_back(std::move(line));
  while (e.logs.size() > options_.max_log_lines_per_job) e.logs.pop_front();
  e.version = ++version_;
}

void JobManager::SetStateLocked(Entry& e, v1::JobState to, const std::string& reason) {
  v1::Job& job = e.stored.job;
  const v1::JobState from = job.state();
  if (HoldsResources(from) && !HoldsResources(to) && options_.rendezvous != nullptr) {
    options_.rendezvous->Drop(absl::StrCat(job.id(), "/", job.attempt()));
  }
  job.set_state(to);
  job.set_message(reason);
  const absl::Time now = options_.clock();
  if (to == v1::JOB_STATE_STARTING && !job.has_start_time())
    *job.mutable_start_time() = ToProto(now);
  if ((to == v1::JOB_STATE_STOPPING_KILLED || to == v1::JOB_STATE_STOPPING_ERROR ||
       to == v1::JOB_STATE_STOPPING_COMPLETED) &&
      e.stop_deadline == absl::InfiniteFuture()) {
    e.stop_deadline = now + options_.kill_grace;
  }
  if (IsTerminal(to)) {
    *job.mutable_end_time() = ToProto(now);
    job.set_jobs_ahead(0);
  }
  LogLocked(
      e,
      IsTerminal(to) && to != v1::JOB_STATE_COMPLETED ? v1::LOG_LEVEL_WARNING : v1::LOG_LEVEL_INFO,
      absl::StrCat(StateName(from), " -> ", StateName(to), reason.empty() ? "" : ": " + reason), -1,
      "");
  SaveLocked(e);
}

void JobManager::SendLocked(const std::string& worker_id, v1::Assignment assignment) {
  assignment.set_sequence(next_assignment_++);
  assignments_[worker_id].push_back(std::move(assignment));
  ++version_;
}

void JobManager::StopRanksLocked(Entry& e, bool graceful, const std::string& reason) {
  const v1::Job& job = e.stored.job;
  for (int r = 0; r < job.placements_size(); ++r) {
    if (r < static_cast<int>(e.ranks.size()) && e.ranks[r].exited) continue;
    SendLocked(job.placements(r).worker_id(), StopOrder(job, r, graceful, reason));
  }
}

void JobManager::FailLocked(Entry& e, const std::string& reason) {
  v1::Job& job = e.stored.job;
  StopRanksLocked(e, /*graceful=*/false, reason);
  if (job.restarts() < job.spec().max_restarts()) {
    job.set_restarts(job.restarts() + 1);
    SetStateLocked(e, v1::JOB_STATE_RESTARTING,
                   absl::StrCat(reason, "; group restart ", job.restarts(), " of ",
                                job.spec().max_restarts(), " from the latest checkpoint"));
    job.clear_placements();
    e.ranks.clear();
    e.adopt_deadline = absl::InfiniteFuture();
    SetStateLocked(e, v1::JOB_STATE_QUEUED, "waiting to restart");
  } else {
    job.clear_placements();
    e.ranks.clear();
    SetStateLocked(
        e, v1::JOB_STATE_ERROR,
        absl::StrCat(reason, "; no restarts left (max_restarts ", job.spec().max_restarts(), ")"));
  }
}

void JobManager::FinishStoppingLocked(Entry& e) {
  const v1::JobState state = e.stored.job.state();
  if (state != v1::JOB_STATE_STOPPING_CANCELED && state != v1::JOB_STATE_STOPPING_KILLED &&
      state != v1::JOB_STATE_STOPPING_ERROR && state != v1::JOB_STATE_STOPPING_COMPLETED &&
      state != v1::JOB_STATE_RESTARTING) {
    return;
  }
  bool all_completed = !e.ranks.empty();
  for (const Rank& r : e.ranks) {
    if (!r.exited) return;
    all_completed = all_completed && r.completed;
  }
  e.stop_deadline = absl::InfiniteFuture();
  e.adopt_deadline = absl::InfiniteFuture();
  if (state == v1::JOB_STATE_RESTARTING) {  // A drain: its ranks checkpointed and exited.
    if (all_completed) {
      SetStateLocked(e, v1::JOB_STATE_COMPLETED, "training finished while draining");
      return;
    }
    const v1::Job& job = e.stored.job;
    const std::string from =
        job.has_latest_checkpoint()
            ? absl::StrCat("the checkpoint at step ", job.latest_checkpoint().step())
            : std::string("the start");
    e.stored.job.clear_placements();
    e.ranks.clear();
    SetStateLocked(e, v1::JOB_STATE_QUEUED,
                   absl::StrCat("moved off a drained worker: waiting to restart from ", from));
    return;
  }
  const v1::JobState to = state == v1::JOB_STATE_STOPPING_COMPLETED ? v1::JOB_STATE_COMPLETED
                          : state == v1::JOB_STATE_STOPPING_ERROR   ? v1::JOB_STATE_ERROR
                                                                    : v1::JOB_STATE_CANCELED;
  SetStateLocked(e, to, e.stored.job.message());
}

absl::Status JobManager::CheckQuotaLocked(const v1::JobSpec& spec, const std::string& owner) const {
  if (!options_.quota) return absl::OkStatus();
  const UserQuota quota = options_.quota(owner);
  int64_t jobs = 1;
  int64_t cores =
      static_cast<int64_t>(spec.resources().ranks()) * spec.resources().cores_per_rank();
  for (const auto& [id, e] : jobs_) {
    if (e.stored.owner != owner || IsTerminal(e.stored.job.state())) continue;
    ++jobs;
    const v1::Resources& r = e.stored.job.spec().resources();
    cores += static_cast<int64_t>(r.ranks()) * r.cores_per_rank();
  }
  if (quota.max_jobs > 0 && jobs > quota.max_jobs) {
    return absl::ResourceExhaustedError(absl::StrCat("quota: ", owner, " may have ", quota.max_jobs,
                                                     " unfinished job(s) (max_jobs)"));
  }
  if (quota.max_cores > 0 && cores > quota.max_cores) {
    return absl::ResourceExhaustedError(
        absl::StrCat("quota: ", owner, "'s unfinished jobs would ask for ", cores,
                     " cores; at most ", quota.max_cores, " (max_cores)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> JobManager::Submit(const v1::JobSpec& spec, const std::string& request_id,
                                           const std::string& owner) {
  absl::StatusOr<v1::JobSpec> normalized = NormalizeJobSpec(spec);
  if (!normalized.ok()) return normalized.status();
  if (normalized->federated().num_rounds() == 0) {
    // What a worker will build for each rank: refused now rather than after queueing.
    STRATA_RETURN_IF_ERROR(BuildRunConfig(*normalized, ProbeSite(*normalized)).status());
    STRATA_RETURN_IF_ERROR(CheckSpecPaths(*normalized, options_.data_roots));
  }
  absl::MutexLock lock(&mu_);
  bool resubmitted = false;  // A retried Submit returns the job it made; no quota applies.
  for (const auto& [id, e] : jobs_) {
    resubmitted = resubmitted || (!request_id.empty() && e.stored.owner == owner &&
                                  e.stored.request_id == request_id);
  }
  if (!resubmitted) STRATA_RETURN_IF_ERROR(CheckQuotaLocked(*normalized, owner));
  StoredJob stored;
  stored.owner = owner;
  stored.request_id = request_id;
  v1::Job& job = stored.job;
  job.set_id(NewJobId());
  *job.mutable_spec() = *std::move(normalized);
  job.set_state(v1::JOB_STATE_QUEUED);
  *job.mutable_submit_time() = ToProto(options_.clock());
  job.mutable_progress()->set_max_steps(job.spec().training().max_steps());
  job.mutable_progress()->set_eval_loss(std::nan(""));
  absl::StatusOr<StoredJob> inserted = options_.store->Insert(std::move(stored));
  if (!inserted.ok()) return inserted.status();
  auto [it, is_new] = jobs_.try_emplace(inserted->job.id());
  if (is_new) {
    it->second.stored = *std::move(inserted);
    LogLocked(it->second, v1::LOG_LEVEL_INFO,
              absl::StrCat("submitted by ", owner.empty() ? "(anonymous)" : owner), -1, "");
    if (IsFederated(it->second.stored.job)) {
      // Its rounds run on edge clients (RoundManager), not on workers.
      SetStateLocked(it->second, v1::JOB_STATE_RUNNING, "federated: rounds open as clients join");
    }
    ScheduleLocked();
  }
  return it->second.stored.job;
}

absl::Status JobManager::OnFederatedRound(const std::string& job_id, int64_t round,
                                          double mean_loss, const std::string& line,
                                          bool finished) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Entry*> found = FindLocked(job_id, "");
  if (!found.ok()) return found.status();
  Entry& e = **found;
  if (e.stored.job.state() != v1::JOB_STATE_RUNNING) return absl::OkStatus();
  v1::JobProgress* progress = e.stored.job.mutable_progress();
  progress->set_round(round);
  if (!std::isnan(mean_loss)) {
    progress->set_loss(mean_loss);
    AddCurvePointLocked(e, {round, mean_loss, std::nan("")});
  }
  *progress->mutable_time() = ToProto(options_.clock());
  LogLocked(e, v1::LOG_LEVEL_INFO, line, -1, "");
  if (finished) {
    SetStateLocked(e, v1::JOB_STATE_COMPLETED, absl::StrCat("federated: ", round, " rounds"));
  } else {
    SaveLocked(e);
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> JobManager::Get(const std::string& job_id, const std::string& owner) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Entry*> e = FindLocked(job_id, owner);
  if (!e.ok()) return e.status();
  return (*e)->stored.job;
}

absl::StatusOr<v1::ListJobsResponse> JobManager::List(const v1::ListJobsRequest& request,
                                                      const std::string& owner) {
  int page_size = request.page_size() == 0 ? 50 : request.page_size();
  if (page_size < 0 || page_size > 1000) {
    return absl::InvalidArgumentError("page_size must be 1-1000");
  }
  int64_t before = INT64_MAX;  // Page token: list sequences below this.
  if (!request.page_token().empty() && !absl::SimpleAtoi(request.page_token(), &before)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad page_token \"", request.page_token(), "\""));
  }
  absl::MutexLock lock(&mu_);
  std::vector<const Entry*> matching;
  for (const auto& [id, e] : jobs_) {
    const v1::Job& job = e.stored.job;
    if (!owner.empty() && e.stored.owner != owner) continue;
    if (e.stored.sequence >= before) continue;
    if (!request.states().empty() && std::find(request.states().begin(), request.states().end(),
                                               job.state()) == request.states().end()) {
      continue;
    }
    if (!absl::StartsWith(job.spec().name(), request.name_prefix())) continue;
    bool labels_ok = true;
    for (const auto& [key, value] : request.labels()) {
      auto it = job.spec().labels().find(key);
      labels_ok = labels_ok && it != job.spec().labels().end() && it->second == value;
    }
    if (labels_ok) matching.push_back(&e);
  }
  std::sort(matching.begin(), matching.end(), [](const Entry* a, const Entry* b) {
    return a->stored.sequence > b->stored.sequence;  // Newest first.
  });
  // A page ends at page_size jobs or at max_list_bytes (always at least one job).
  v1::ListJobsResponse response;
  size_t bytes = 0, taken = 0;
  for (; taken < matching.size() && taken < static_cast<size_t>(page_size); ++taken) {
    const v1::Job& job = matching[taken]->stored.job;
    bytes += job.ByteSizeLong();
    if (taken > 0 && bytes > options_.max_list_bytes) break;
    *response.add_jobs() = job;
  }
  if (taken < matching.size()) {
    response.set_next_page_token(absl::StrCat(matching[taken - 1]->stored.sequence));
  }
  return response;
}

absl::StatusOr<v1::Job> JobManager::Cancel(const std::string& job_id, const std::string& reason,
                                           const std::string& owner) {
  return Stop(job_id, reason.empty() ? "canceled by the user" : reason, owner, /*graceful=*/true);
}

absl::StatusOr<v1::Job> JobManager::Kill(const std::string& job_id, const std::string& reason,
                                         const std::string& owner) {
  return Stop(job_id, reason.empty() ? "killed by the user" : reason, owner, /*graceful=*/false);
}

absl::StatusOr<v1::Job> JobManager::Stop(const std::string& job_id, const std::string& why,
                                         const std::string& owner, bool graceful) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Entry*> found = FindLocked(job_id, owner);
  if (!found.ok()) return found.status();
  Entry& e = **found;
  const v1::JobState state = e.stored.job.state();
  if (IsTerminal(state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", job_id, " is already ", StateName(state)));
  }
  // A second cancel changes nothing; a kill overrides a graceful stop under way.
  if (graceful &&
      (state == v1::JOB_STATE_STOPPING_CANCELED || state == v1::JOB_STATE_STOPPING_KILLED)) {
    return e.stored.job;
  }
  if (!HoldsResources(state)) {
    SetStateLocked(e, v1::JOB_STATE_CANCELED, why);
  } else {
    SetStateLocked(e, graceful ? v1::JOB_STATE_STOPPING_CANCELED : v1::JOB_STATE_STOPPING_KILLED,
                   why);
    StopRanksLocked(e, graceful, why);
    e.stop_deadline = options_.clock() + (graceful ? options_.cancel_grace : options_.kill_grace);
    FinishStoppingLocked(e);
  }
  ScheduleLocked();
  return e.stored.job;
}

absl::StatusOr<std::vector<v1::LogLine>> JobManager::Logs(const v1::JobLogsRequest& request,
                                                          const std::string& owner,
                                                          v1::JobState* state) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Entry*> found = FindLocked(request.job_id(), owner);
  if (!found.ok()) return found.status();
  const Entry& e = **found;
  *state = e.stored.job.state();
  std::vector<v1::LogLine> lines;
  for (const v1::LogLine& line : e.logs) {
    if (line.sequence() <= request.after_sequence()) continue;
    if (!request.ranks().empty() && std::find(request.ranks().begin(), request.ranks().end(),
                                              line.rank()) == request.ranks().end()) {
      continue;
    }
    if (request.min_level() != v1::LOG_LEVEL_UNSPECIFIED && line.level() < request.min_level()) {
      continue;
    }
    lines.push_back(line);
  }
  if (request.tail() > 0 && lines.size() > static_cast<size_t>(request.tail())) {
    lines.erase(lines.begin(), lines.end() - request.tail());
  }
  return lines;
}

absl::StatusOr<v1::Job> JobManager::WaitForChange(const std::string& job_id,
                                                  const std::string& owner, int64_t* version,
                                                  absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Entry*> found = FindLocked(job_id, owner);
  if (!found.ok()) return found.status();
  Entry* e = *found;  // Entries are never erased.
  const int64_t seen = *version;
  auto changed = [e, seen]() { return e->version > seen; };
  mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
  *version = e->version;
  return e->stored.job;
}

absl::StatusOr<std::string> JobManager::ExportWorker(const std::string& job_id,
                                                     const std::string& owner) {
  absl::MutexLock lock(&mu_);
  STRATA_ASSIGN_OR_RETURN(Entry * e, FindLocked(job_id, owner));
  const v1::Job& job = e->stored.job;
  if (!job.spec().checkpoint().export_safetensors()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " was not submitted with checkpoint.export_safetensors: it has no export"));
  }
  if (job.state() != v1::JOB_STATE_COMPLETED || job.placements().empty()) {
    return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " is ",
                                                      StateName(job.state()),
                                                      "; its export is written when it completes"));
  }
  const std::string& worker = job.placements(0).worker_id();
  const v1::ListWorkersResponse live = options_.registry->List(/*include_lost=*/false);
  for (const v1::WorkerInfo& w : live.workers()) {
    if (w.worker_id() == worker) return worker;
  }
  return absl::UnavailableError(
      absl::StrCat("worker ", worker, ", which holds the export, is not connected"));
}

absl::Status JobManager::RequestUpload(const std::string& job_id, const std::string& worker_id,
                                       int64_t transfer_id) {
  absl::MutexLock lock(&mu_);
  STRATA_ASSIGN_OR_RETURN(Entry * e, FindLocked(job_id, ""));
  v1::Assignment a;
  v1::UploadExport* upload = a.mutable_upload();
  upload->set_job_id(job_id);
  upload->set_owner(e->stored.owner);
  upload->set_transfer_id(transfer_id);
  SendLocked(worker_id, std::move(a));
  return absl::OkStatus();
}

int64_t JobManager::OpenAssignments(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  const int64_t generation = next_stream_++;
  streams_[worker_id] = generation;
  // The queue is rebuilt from the jobs' state: whatever an older stream took but the worker may
  // never have received is sent again (the worker ignores a start it already runs or ran).
  std::deque<v1::Assignment>& queue = assignments_[worker_id];
  std::deque<v1::Assignment> uploads;  // Export orders are not derived from job state: kept.
  for (v1::Assignment& a : queue) {
    if (a.has_upload()) uploads.push_back(std::move(a));
  }
  queue = std::move(uploads);
  for (auto& [id, e] : jobs_) {
    const v1::Job& job = e.stored.job;
    if (!HoldsResources(job.state())) continue;
    const bool stopping =
        job.state() != v1::JOB_STATE_STARTING && job.state() != v1::JOB_STATE_RUNNING;
    for (int r = 0; r < job.placements_size() && r < static_cast<int>(e.ranks.size()); ++r) {
      if (job.placements(r).worker_id() != worker_id || e.ranks[r].exited) continue;
      if (!stopping) {
        if (!e.ranks[r].started) {
          queue.push_back(StartOrderLocked(e, job.placements(r)));
          queue.back().set_sequence(next_assignment_++);
        }
        continue;
      }
      queue.push_back(StopOrder(job, r,
                                /*graceful=*/job.state() == v1::JOB_STATE_STOPPING_CANCELED ||
                                    job.state() == v1::JOB_STATE_STOPPING_COMPLETED,
                                job.message()));
      queue.back().set_sequence(next_assignment_++);
    }
  }
  return generation;
}

absl::StatusOr<std::vector<v1::Assignment>> JobManager::TakeAssignments(
    const std::string& worker_id, int64_t generation, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this, &worker_id, generation]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (streams_[worker_id] != generation) return true;
    auto it = assignments_.find(worker_id);
    return it != assignments_.end() && !it->second.empty();
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (streams_[worker_id] != generation) {
    return absl::AbortedError(
        absl::StrCat("a newer assignment stream of worker ", worker_id, " replaced this one"));
  }
  std::vector<v1::Assignment> out;
  auto it = assignments_.find(worker_id);
  if (it != assignments_.end()) {
    out.assign(it->second.begin(), it->second.end());
    it->second.clear();
  }
  return out;
}

JobManager::Entry* JobManager::CurrentLocked(const v1::RankRef& ref) {
  auto it = jobs_.find(ref.job_id());
  if (it == jobs_.end()) return nullptr;
  Entry& e = it->second;
  if (e.stored.job.attempt() != ref.attempt() || !HoldsResources(e.stored.job.state()) ||
      ref.rank() < 0 || ref.rank() >= static_cast<int>(e.ranks.size())) {
    return nullptr;
  }
  return &e;
}

absl::StatusOr<JobManager::Entry*> JobManager::ReporterLocked(const v1::RankRef& ref,
                                                              const std::string& worker_id) {
  Entry* e = CurrentLocked(ref);
  if (e == nullptr) return nullptr;
  const std::string& placed = e->stored.job.placements(ref.rank()).worker_id();
  if (placed != worker_id) {
    return absl::PermissionDeniedError(absl::StrCat("rank ", ref.rank(), " of job ", ref.job_id(),
                                                    " attempt ", ref.attempt(), " runs on worker ",
                                                    placed, ", not on \"", worker_id, "\""));
  }
  return e;
}

bool JobManager::PlacedInAttempt(const std::string& prefix, const std::string& worker_id) const {
  const std::pair<std::string, std::string> parts = absl::StrSplit(prefix, absl::MaxSplits('/', 1));
  int attempt = 0;
  // Only the canonical spelling: "j-x/01" would be a different store prefix, never dropped.
  if (!absl::SimpleAtoi(parts.second, &attempt) || parts.second != absl::StrCat(attempt)) {
    return false;
  }
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(parts.first);
  if (it == jobs_.end()) return false;
  const v1::Job& job = it->second.stored.job;
  if (job.attempt() != attempt || !HoldsResources(job.state())) return false;
  for (const v1::RankPlacement& p : job.placements()) {
    if (p.worker_id() == worker_id) return true;
  }
  return false;
}

absl::StatusOr<v1::ReportAck> JobManager::OnProgress(const v1::ProgressReport& report) {
  absl::MutexLock lock(&mu_);
  v1::ReportAck ack;
  STRATA_ASSIGN_OR_RETURN(Entry * e, ReporterLocked(report.ref(), report.worker_id()));
  if (e == nullptr) {
    ack.set_stale(true);
    return ack;
  }
  Rank& rank = e->ranks[report.ref().rank()];
  rank.started = true;
  e->adopt_deadline = absl::InfiniteFuture();
  for (const v1::LogLine& line : report.logs()) {
    LogLocked(*e, line.level() == v1::LOG_LEVEL_UNSPECIFIED ? v1::LOG_LEVEL_INFO : line.level(),
              line.text(), report.ref().rank(), report.worker_id());
  }
  if (report.has_progress() && report.ref().rank() == 0) {
    v1::JobProgress& p = *e->stored.job.mutable_progress();
    if (HasEvaluation(report.progress())) {
      p = report.progress();
      RecordEvaluation(p, e->stored.job.mutable_eval_metrics());
    } else {
      // No evaluation yet in this attempt: the job's latest one (an earlier attempt's) stays.
      const v1::JobProgress evaluated = std::move(p);
      p = report.progress();
      p.set_eval_loss(evaluated.eval_loss());
      p.set_eval_step(evaluated.eval_step());
      *p.mutable_eval_metrics() = evaluated.eval_metrics();
    }
    p.set_max_steps(e->stored.job.spec().training().max_steps());
    AddCurvePointLocked(*e, {report.progress().step(), report.progress().loss(),
                             report.progress().eval_loss()});
  }
  if (e->stored.job.state() == v1::JOB_STATE_STARTING) {
    SetStateLocked(*e, v1::JOB_STATE_RUNNING, "ranks running");
  } else {
    SaveLocked(*e);
  }
  return ack;
}

absl::StatusOr<v1::ReportAck> JobManager::OnCheckpoint(const v1::CheckpointReport& report) {
  absl::MutexLock lock(&mu_);
  v1::ReportAck ack;
  STRATA_ASSIGN_OR_RETURN(Entry * e, ReporterLocked(report.ref(), report.worker_id()));
  if (e == nullptr) {
    ack.set_stale(true);
    return ack;
  }
  v1::CheckpointInfo info = report.checkpoint();
  info.set_worker_id(report.worker_id());
  v1::Job& job = e->stored.job;
  if (info.step() < 0 || info.step() > job.spec().training().max_steps()) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint.step ", info.step(), " is outside [0, training.max_steps]"));
  }
  *job.mutable_latest_checkpoint() = info;
  // The same retention the rank applies on disk: the newest keep_last, one per step.
  auto* kept = job.mutable_checkpoints();
  for (int i = kept->size() - 1; i >= 0; --i) {
    if (kept->Get(i).step() == info.step()) kept->DeleteSubrange(i, 1);
  }
  *kept->Add() = info;
  std::sort(
      kept->begin(), kept->end(),
      [](const v1::CheckpointInfo& a, const v1::CheckpointInfo& b) { return a.step() < b.step(); });
  const int keep = std::max(1, job.spec().checkpoint().keep_last());
  if (kept->size() > keep) kept->DeleteSubrange(0, kept->size() - keep);
  LogLocked(*e, v1::LOG_LEVEL_INFO,
            absl::StrCat("checkpoint at step ", info.step(), ": ", info.path()),
            report.ref().rank(), "");
  SaveLocked(*e);
  return ack;
}

absl::StatusOr<v1::ReportAck> JobManager::OnRankExit(const v1::RankExit& exit) {
  absl::MutexLock lock(&mu_);
  v1::ReportAck ack;
  STRATA_ASSIGN_OR_RETURN(Entry * e, ReporterLocked(exit.ref(), exit.worker_id()));
  if (e == nullptr) {
    ack.set_stale(true);
    return ack;
  }
  Rank& rank = e->ranks[exit.ref().rank()];
  if (rank.exited) return ack;  // A repeated report.
  rank.exited = true;
  rank.completed = exit.completed();
  const std::string how = exit.signal() != 0
                              ? absl::StrCat("killed by signal ", exit.signal())
                              : absl::StrCat("exited with status ", exit.exit_code());
  LogLocked(*e, exit.completed() ? v1::LOG_LEVEL_INFO : v1::LOG_LEVEL_WARNING,
            absl::StrCat("rank ", exit.ref().rank(), " ", how,
                         exit.error().empty() ? "" : ": " + exit.error()),
            exit.ref().rank(), exit.worker_id());
  const v1::JobState state = e->stored.job.state();
  if (state == v1::JOB_STATE_STARTING || state == v1::JOB_STATE_RUNNING) {
    if (!exit.completed()) {
      FailLocked(*e, absl::StrCat("rank ", exit.ref().rank(), " on ", exit.worker_id(), " ", how,
                                  exit.error().empty() ? "" : ": " + exit.error()));
    } else {
      bool all = true;
      for (const Rank& r : e->ranks) all = all && r.completed;
      if (all) SetStateLocked(*e, v1::JOB_STATE_COMPLETED, "training finished");
    }
  } else {
    FinishStoppingLocked(*e);
  }
  ScheduleLocked();
  return ack;
}

absl::StatusOr<v1::StepLogAck> JobManager::OnStepLog(const v1::StepLogReport& report) {
  absl::MutexLock lock(&mu_);
  v1::StepLogAck ack;
  STRATA_ASSIGN_OR_RETURN(Entry * e, ReporterLocked(report.ref(), report.worker_id()));
  if (e == nullptr) {
    ack.set_stale(true);
    return ack;
  }
  if (!e->stored.job.spec().optimizer().has_zeroth_order()) {
    return absl::FailedPreconditionError("step-log records are for zeroth-order jobs");
  }
  const int q = e->stored.job.spec().optimizer().zeroth_order().num_perturbations();
  for (const v1::ZoStepRecord& r : report.records()) {
    if (r.step() < 1 || r.step() > e->stored.job.spec().training().max_steps()) {
      return absl::InvalidArgumentError(
          absl::StrCat("record of step ", r.step(), " is outside [1, training.max_steps]"));
    }
    if (r.projected_grads_size() != q) {
      return absl::InvalidArgumentError(absl::StrCat("record of step ", r.step(), " has ",
                                                     r.projected_grads_size(),
                                                     " scalars; the job uses ", q));
    }
  }
  absl::StatusOr<int64_t> durable = options_.store->AppendSteps(
      e->stored.job.id(), {report.records().begin(), report.records().end()});
  if (!durable.ok()) return durable.status();
  ack.set_durable_through_step(*durable);
  return ack;
}

void JobManager::OnHeartbeat(const std::string& worker_id,
                             const std::vector<v1::RunningRank>& running) {
  absl::MutexLock lock(&mu_);
  for (const v1::RunningRank& r : running) {
    Entry* e = CurrentLocked(r.ref());
    if (e != nullptr && e->stored.job.placements(r.ref().rank()).worker_id() == worker_id) {
      e->ranks[r.ref().rank()].started = true;
      e->adopt_deadline = absl::InfiniteFuture();
      continue;
    }
    // A rank the coordinator no longer wants (old attempt, finished job): stop it.
    v1::Assignment a;
    *a.mutable_stop()->mutable_ref() = r.ref();
    a.mutable_stop()->set_graceful(false);
    a.mutable_stop()->set_reason("the coordinator no longer runs this attempt");
    SendLocked(worker_id, std::move(a));
  }
}

void JobManager::Tick() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = options_.clock();
  std::map<std::string, bool> lost;
  const v1::ListWorkersResponse workers = options_.registry->List(/*include_lost=*/true);
  for (const v1::WorkerInfo& w : workers.workers()) lost[w.worker_id()] = w.lost();
  for (auto& [id, e] : jobs_) {
    const v1::JobState state = e.stored.job.state();
    if (!HoldsResources(state)) continue;
    for (int r = 0; r < e.stored.job.placements_size(); ++r) {
      const std::string& worker = e.stored.job.placements(r).worker_id();
      auto it = lost.find(worker);
      const bool gone = it == lost.end() ? now >= e.adopt_deadline : it->second;
      if (!gone || e.ranks[r].exited) continue;
      if (state == v1::JOB_STATE_STARTING || state == v1::JOB_STATE_RUNNING) {
        FailLocked(e, absl::StrCat("worker ", worker, " lost (rank ", r, ")"));
        break;
      }
      e.ranks[r].exited = true;  // Stopping: a lost worker's rank is gone too.
    }
    if (e.stored.job.state() == v1::JOB_STATE_STARTING ||
        e.stored.job.state() == v1::JOB_STATE_RUNNING) {
      if (now >= e.adopt_deadline) {
        FailLocked(e, "no worker reported the job's ranks after a coordinator restart");
      }
    }
    const bool graceful_stop = e.stored.job.state() == v1::JOB_STATE_STOPPING_CANCELED ||
                               e.stored.job.state() == v1::JOB_STATE_RESTARTING;
    if (graceful_stop && now >= e.stop_deadline) {
      LogLocked(e, v1::LOG_LEVEL_WARNING, "graceful stop timed out: killing the ranks", -1, "");
      e.stop_deadline = now + options_.kill_grace;
      StopRanksLocked(e, /*graceful=*/false, "graceful stop timed out");
    } else if (!graceful_stop &&
               e.stored.job.state() != v1::JOB_STATE_STARTING &&
               e.stored.job.state() != v1::JOB_STATE_RUNNING && now >= e.stop_deadline) {
      // No worker confirmed the stop (an order it never got, a rank it never ran): the ranks
      // are written off so the job ends; a worker reporting them later is told to stop.
      LogLocked(e, v1::LOG_LEVEL_WARNING,
                "no worker confirmed the stop in time: the ranks are written off", -1, "");
      for (Rank& rank : e.ranks) rank.exited = true;
    }
    FinishStoppingLocked(e);
  }
  ScheduleLocked();
}

void JobManager::ScheduleLocked() {
  // Free capacity of live workers.
  const v1::ListWorkersResponse live = options_.registry->List(/*include_lost=*/false);
  std::vector<FreeCapacity> free;
  std::map<std::string, size_t> index;
  for (const v1::WorkerInfo& w : live.workers()) {
    // Cordoned and leaving workers take no new ranks.
    if (cordoned_.count(w.worker_id()) > 0 || leaving_.count(w.worker_id()) > 0) continue;
    index[w.worker_id()] = free.size();
    free.push_back(FullCapacity(w));
  }
  const std::vector<FreeCapacity> idle = free;
  std::vector<Entry*> queued;
  for (auto& [id, e] : jobs_) {
    const v1::Job& job = e.stored.job;
    if (job.state() == v1::JOB_STATE_QUEUED) {
      queued.push_back(&e);
      continue;
    }
    if (!HoldsResources(job.state())) continue;
    for (int k = 0; k < job.placements_size(); ++k) {
      if (k < static_cast<int>(e.ranks.size()) && e.ranks[k].exited) continue;
      auto it = index.find(job.placements(k).worker_id());
      if (it != index.end()) Reserve(job.spec().resources(), job.placements(k), &free[it->second]);
    }
  }
  std::sort(queued.begin(), queued.end(), [](const Entry* a, const Entry* b) {
    const int pa = a->stored.job.spec().priority(), pb = b->stored.job.spec().priority();
    return pa != pb ? pa < pb : a->stored.sequence < b->stored.sequence;
  });
  bool blocked = false;
  int ahead = 0;  // Jobs still queued in front of the current one.
  for (Entry* queued_entry : queued) {
    Entry& e = *queued_entry;
    v1::Job& job = e.stored.job;
    // jobs_ahead and the waiting reason are derived from the queue: updated in memory (and for
    // watchers), not written to the store on every change — a restart recomputes them.
    if (std::optional<std::string> never = NeverFits(job.spec().resources(), idle)) {
      // It cannot start on these workers at all: it waits without holding up the queue.
      const std::string why = "unschedulable: " + *never;
      if (job.message() != why) {
        job.set_message(why);
        e.version = ++version_;
      }
      continue;
    }
    if (blocked) {
      if (job.jobs_ahead() != ahead) {
        job.set_jobs_ahead(ahead);
        e.version = ++version_;
      }
      ++ahead;
      continue;
    }
    // Gang placement: every rank, first fit over workers in id order, or nothing.
    const v1::Resources& r = job.spec().resources();
    std::optional<std::vector<v1::RankPlacement>> placed = PlaceGang(r, &free);
    if (!placed.has_value()) {
      blocked = true;
      const std::string why =
          free.empty() ? "waiting for workers"
                       : absl::StrCat("waiting for resources: ", r.ranks(), " rank(s) of ",
                                      r.cores_per_rank(), " core(s) each do not fit yet");
      if (job.jobs_ahead() != ahead || job.message() != why) {
        job.set_jobs_ahead(ahead);
        job.set_message(why);
        e.version = ++version_;
      }
      ++ahead;
      continue;
    }
    const std::vector<v1::RankPlacement>& placements = *placed;
    job.clear_placements();
    for (const v1::RankPlacement& p : placements) *job.add_placements() = p;
    job.set_attempt(job.attempt() + 1);
    job.set_jobs_ahead(0);
    e.ranks.assign(placements.size(), Rank());
    // Ranks that no worker reports by then (an order lost with a dropped stream) restart.
    e.adopt_deadline = options_.clock() + options_.adopt_timeout;
    SetStateLocked(e, v1::JOB_STATE_STARTING,
                   absl::StrCat("attempt ", job.attempt(), " on ", job.placements(0).worker_id(),
                                job.placements_size() > 1 ? " and others" : ""));
    for (const v1::RankPlacement& p : job.placements()) {
      SendLocked(p.worker_id(), StartOrderLocked(e, p));
    }
  }
}

v1::Assignment JobManager::StartOrderLocked(Entry& e, const v1::RankPlacement& p) {
  const v1::Job& job = e.stored.job;
  v1::Assignment a;
  v1::StartRank* start = a.mutable_start();
  start->mutable_ref()->set_job_id(job.id());
  start->mutable_ref()->set_attempt(job.attempt());
  start->mutable_ref()->set_rank(p.rank());
  start->set_world_size(job.placements_size());
  *start->mutable_spec() = job.spec();
  *start->mutable_gpu_indices() = p.gpu_indices();
  start->set_rendezvous_prefix(absl::StrCat(job.id(), "/", job.attempt()));
  start->set_coordinator_address(options_.coordinator_address);
  start->set_owner(e.stored.owner);
  if (job.attempt() > 1 && job.spec().optimizer().has_zeroth_order()) {
    // The step log so far: the new attempt replays it (unless its checkpoint directory
    // already has the run, e.g. shared storage or the same worker).
    absl::StatusOr<std::vector<v1::ZoStepRecord>> steps = options_.store->Steps(job.id());
    if (steps.ok()) {
      for (v1::ZoStepRecord& record : *steps) *start->add_replay() = std::move(record);
    } else {
      LogLocked(e, v1::LOG_LEVEL_WARNING,
                absl::StrCat("step log unreadable, not replayed: ", steps.status().message()), -1,
                "");
    }
  }
  return a;
}

void JobManager::CollectMetrics(MetricsWriter* out) const {
  const v1::ListWorkersResponse workers = options_.registry->List(/*include_lost=*/true);
  int ready = 0, lost = 0;
  for (const v1::WorkerInfo& w : workers.workers()) (w.lost() ? lost : ready) += 1;
  out->Gauge("strata_workers", "Registered workers by state.", {{"state", "ready"}}, ready);
  out->Gauge("strata_workers", "Registered workers by state.", {{"state", "lost"}}, lost);
  absl::MutexLock lock(&mu_);
  std::map<v1::JobState, int> by_state;
  for (int s = v1::JOB_STATE_QUEUED; s <= v1::JOB_STATE_ERROR; ++s) {
    by_state[static_cast<v1::JobState>(s)] = 0;
  }
  int running = 0;
  for (const auto& [id, e] : jobs_) {
    ++by_state[e.stored.job.state()];
    running += HoldsResources(e.stored.job.state()) ? 1 : 0;
  }
  out->Gauge("strata_jobs_queued", "Jobs waiting for resources.", {},
             by_state[v1::JOB_STATE_QUEUED]);
  out->Gauge("strata_jobs_running", "Jobs holding workers (starting, running or stopping).", {},
             running);
  for (const auto& [state, count] : by_state) {
    out->Gauge("strata_jobs", "Jobs by lifecycle state.", {{"state", StateName(state)}}, count);
  }
  for (const auto& [id, e] : jobs_) {
    const v1::Job& job = e.stored.job;
    if (!HoldsResources(job.state())) continue;
    const v1::JobProgress& p = job.progress();
    const MetricLabels job_rank = {{"job_id", id}, {"rank", "0"}};
    out->Gauge("strata_train_step", "Latest optimizer step reported by rank 0.", job_rank,
               static_cast<double>(p.step()));
    out->Gauge("strata_train_loss", "Latest training loss reported by rank 0.", job_rank, p.loss());
    if (!std::isnan(p.eval_loss())) {
      out->Gauge("strata_train_eval_loss", "Latest held-out loss.", job_rank, p.eval_loss());
    }
    // By name, so each scrape lists them in the same order (a protobuf map has none).
    const std::map<std::string, double> task_metrics(p.eval_metrics().begin(),
                                                     p.eval_metrics().end());
    for (const auto& [metric, value] : task_metrics) {
      if (std::isnan(value)) continue;
      out->Gauge("strata_job_eval_metric",
                 "Latest evaluation's task metric (accuracy, f1, exact_match, token_f1, ...).",
                 {{"job_id", id}, {"metric", metric}}, value);
    }
    out->Counter("strata_train_tokens_total", "Training tokens processed (current attempt).",
                 job_rank, static_cast<double>(p.tokens_total()));
    out->Gauge("strata_train_tokens_per_second", "Training throughput over the last interval.",
               job_rank, p.tokens_per_second());
    out->Counter("strata_offload_nvme_read_bytes_total",
                 "Bytes read from the NVMe offload tier (current attempt).", job_rank,
                 static_cast<double>(p.offload_read_bytes()));
    out->Counter("strata_offload_nvme_write_bytes_total",
                 "Bytes written to the NVMe offload tier (current attempt).", job_rank,
                 static_cast<double>(p.offload_write_bytes()));
    out->Counter("strata_job_restarts_total", "Group restarts of the job.", {{"job_id", id}},
                 job.restarts());
  }
}

void JobManager::AddCurvePointLocked(Entry& e, const CurvePoint& point) {
  if (!e.curve.empty() && e.curve.back().step == point.step) {
    e.curve.back() = point;
    return;
  }
  if (e.curve.size() >= kMaxCurvePoints) {  // Keep every other point: the whole run, coarser.
    std::deque<CurvePoint> halved;
    for (size_t i = 0; i < e.curve.size(); i += 2) halved.push_back(e.curve[i]);
    e.curve = std::move(halved);
  }
  e.curve.push_back(point);
}

absl::Status JobManager::SetCordoned(const std::string& worker, bool cordoned) {
  bool known = false;
  const v1::ListWorkersResponse workers = options_.registry->List(/*include_lost=*/true);
  for (const v1::WorkerInfo& w : workers.workers()) {
    known = known || w.worker_id() == worker;
  }
  absl::MutexLock lock(&mu_);
  if (!known && cordoned_.count(worker) == 0) {
    return absl::NotFoundError(absl::StrCat("no worker ", worker, " (strata node list)"));
  }
  STRATA_RETURN_IF_ERROR(options_.store->SetCordoned(worker, cordoned));
  if (cordoned) {
    cordoned_.insert(worker);
  } else {
    cordoned_.erase(worker);
  }
  ++version_;
  ScheduleLocked();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> JobManager::Drain(const std::string& worker,
                                                           const std::string& by, bool leaving) {
  if (!leaving) STRATA_RETURN_IF_ERROR(SetCordoned(worker, true));
  absl::MutexLock lock(&mu_);
  if (leaving) leaving_.insert(worker);
  std::vector<std::string> moved;
  const std::string reason = absl::StrCat("worker ", worker, " is draining (", by,
                                          "): checkpointing, then restarting elsewhere");
  for (auto& [id, e] : jobs_) {
    const v1::JobState state = e.stored.job.state();
    if (state != v1::JOB_STATE_STARTING && state != v1::JOB_STATE_RUNNING) continue;
    bool placed_there = false;
    for (const v1::RankPlacement& p : e.stored.job.placements()) {
      placed_there = placed_there || p.worker_id() == worker;
    }
    if (!placed_there) continue;
    SetStateLocked(e, v1::JOB_STATE_RESTARTING, reason);
    StopRanksLocked(e, /*graceful=*/true, reason);
    e.adopt_deadline = absl::InfiniteFuture();
    e.stop_deadline = options_.clock() + options_.cancel_grace;
    FinishStoppingLocked(e);
    moved.push_back(id);
  }
  ScheduleLocked();
  return moved;
}

void JobManager::OnRegister(const std::string& worker) {
  absl::MutexLock lock(&mu_);
  if (leaving_.erase(worker) > 0) ScheduleLocked();
}

std::set<std::string> JobManager::Cordoned() const {
  absl::MutexLock lock(&mu_);
  return cordoned_;
}

std::vector<JobManager::JobView> JobManager::Dashboard(const std::string& owner,
                                                       size_t recent_finished) const {
  constexpr size_t kEvents = 12;
  absl::MutexLock lock(&mu_);
  std::vector<const Entry*> shown;
  for (const auto& [id, e] : jobs_) {
    if (owner.empty() || e.stored.owner == owner) shown.push_back(&e);
  }
  std::sort(shown.begin(), shown.end(), [](const Entry* a, const Entry* b) {
    return a->stored.sequence < b->stored.sequence;
  });
  size_t finished = 0;
  for (const Entry* e : shown) finished += IsTerminal(e->stored.job.state()) ? 1 : 0;
  std::vector<JobView> views;
  for (const Entry* e : shown) {
    if (IsTerminal(e->stored.job.state()) && finished-- > recent_finished) continue;
    JobView view;
    view.job = e->stored.job;
    view.owner = e->stored.owner;
    view.curve.assign(e->curve.begin(), e->curve.end());
    for (auto it = e->logs.rbegin(); it != e->logs.rend() && view.events.size() < kEvents; ++it) {
      if (it->rank() < 0 || it->level() >= v1::LOG_LEVEL_WARNING) view.events.push_back(*it);
    }
    std::reverse(view.events.begin(), view.events.end());
    views.push_back(std::move(view));
  }
  return views;
}

}  // namespace strata
