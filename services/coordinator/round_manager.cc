// See round_manager.h.
#include "services/coordinator/round_manager.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/base/status_macros.h"

namespace strata {
namespace {

void SetTime(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t nanos = absl::ToUnixNanos(t);
  out->set_seconds(nanos / 1000000000);
  out->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t nanos = absl::ToInt64Nanoseconds(d);
  out->set_seconds(nanos / 1000000000);
  out->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

// 128 bits from the OS CSPRNG: a session token nobody can guess from earlier ones.
absl::StatusOr<std::string> NewSession() {
  uint64_t words[2];
  size_t filled = 0;
  while (filled < sizeof(words)) {
    const ssize_t n = getrandom(reinterpret_cast<char*>(words) + filled, sizeof(words) - filled, 0);
    if (n < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("getrandom: ", std::strerror(errno)));
    }
    if (n > 0) filled += static_cast<size_t>(n);
  }
  return absl::StrFormat("%016x%016x", words[0], words[1]);
}

const char* OutcomeName(v1::PushOutcome outcome) {
  switch (outcome) {
    case v1::PUSH_OUTCOME_ACCEPTED:
      return "ok";
    case v1::PUSH_OUTCOME_DUPLICATE:
      return "duplicate";
    case v1::PUSH_OUTCOME_LATE:
      return "late";
    case v1::PUSH_OUTCOME_NOT_SAMPLED:
      return "not_sampled";
    default:
      return "rejected";
  }
}

}  // namespace

absl::StatusOr<RoundManager::Job*> RoundManager::FindLocked(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  if (it != jobs_.end()) return it->second.get();
  absl::StatusOr<v1::Job> job = options_.jobs->Get(job_id, "");
  if (!job.ok()) return job.status();
  const v1::JobSpec& spec = job->spec();
  if (!spec.has_federated() || spec.federated().num_rounds() <= 0) {
    return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " is not federated"));
  }
  auto fed = std::make_unique<Job>();
  fed->id = job_id;
  fed->spec = spec.federated();
  fed->hyper.set_lr(spec.optimizer().zeroth_order().lr());
  fed->hyper.set_epsilon(spec.optimizer().zeroth_order().epsilon());
  fed->hyper.set_local_steps(spec.federated().local_steps());
  fed->hyper.set_batch_size(spec.data().batch_size());
  fed->hyper.set_seq_len(spec.data().seq_len());
  fed->root = spec.training().seed();
  fed->model = spec.model();
  fed->peft = spec.peft();
  fed->base_sha256 = spec.federated().base_checkpoint_sha256();
  if (spec.has_task()) fed->task = spec.task();
  // Back from the store: closed rounds give the history; a round open at a restart failed.
  absl::StatusOr<std::vector<StoredRound>> stored = options_.store->Rounds(job_id);
  if (!stored.ok()) return stored.status();
  for (StoredRound& r : *stored) {
    if (r.info.state() == v1::ROUND_STATE_OPEN || r.info.state() == v1::ROUND_STATE_WAITING) {
      r.info.set_state(v1::ROUND_STATE_FAILED);
      SetTime(options_.clock(), r.info.mutable_close_time());
      STRATA_RETURN_IF_ERROR(options_.store->PutRound(job_id, r.info, nullptr));
    }
    if (r.has_entry) fed->history.push_back(r.entry);
    fed->round = r.info.round();
    fed->rounds.push_back(r.info);
  }
  fed->finished = fed->round >= fed->spec.num_rounds() || job->state() != v1::JOB_STATE_RUNNING;
  Job* raw = fed.get();
  jobs_[job_id] = std::move(fed);
  return raw;
}

absl::StatusOr<RoundManager::Job*> RoundManager::SessionLocked(const std::string& job_id,
                                                               const std::string& client_id,
                                                               const std::string& session) {
  auto it = sessions_.find(session);
  if (session.empty() || it == sessions_.end()) {
    return absl::UnauthenticatedError("unknown session: register (again) first");
  }
  if (it->second != absl::StrCat(job_id, "/", client_id)) {
    return absl::PermissionDeniedError(
        absl::StrCat("this session belongs to another client or job, not ", client_id));
  }
  absl::StatusOr<Job*> job = FindLocked(job_id);
  if (!job.ok()) return job.status();
  (*job)->clients[client_id].last_seen = options_.clock();
  return job;
}

absl::Status RoundManager::SpendCallLocked(Client& client, const std::string& client_id) {
  if (options_.rate_per_second <= 0) return absl::OkStatus();
  const absl::Time now = options_.clock();
  if (client.tokens < 0) {
    client.tokens = options_.rate_burst;
  } else {
    client.tokens =
        std::min(options_.rate_burst, client.tokens + absl::ToDoubleSeconds(now - client.refilled) *
                                                          options_.rate_per_second);
  }
  client.refilled = now;
  if (client.tokens < 1) {
    ++rate_limited_;
    return absl::ResourceExhaustedError(absl::StrCat(
        "client ", client_id, " exceeds ", options_.rate_per_second, " calls per second"));
  }
  client.tokens -= 1;
  return absl::OkStatus();
}

absl::StatusOr<v1::RegisterClientResponse> RoundManager::Register(
    const v1::RegisterClientRequest& request) {
  if (request.client_id().empty() || request.client_id().size() > 128) {
    return absl::InvalidArgumentError("client_id must be 1-128 characters");
  }
  absl::MutexLock lock(&mu_);
  if (!options_.open_enrollment) {
    auto it = options_.enrollment.find(request.token());
    if (it == options_.enrollment.end() ||
        (it->second != "*" && it->second != request.client_id())) {
      ++registrations_refused_;
      return absl::UnauthenticatedError(absl::StrCat(
          "no enrollment token for client ", request.client_id(),
          options_.enrollment.empty()
              ? " (the coordinator has no --client_tokens_file and no --open_enrollment)"
              : ""));
    }
  }
  absl::StatusOr<Job*> found = FindLocked(request.job_id());
  if (!found.ok()) return found.status();
  Job& job = **found;
  if (request.num_samples() > job.spec.max_num_samples()) {
    ++registrations_refused_;
    return absl::InvalidArgumentError(absl::StrCat("num_samples ", request.num_samples(),
                                                   " exceeds the job's "
                                                   "federated.max_num_samples = ",
                                                   job.spec.max_num_samples()));
  }
  STRATA_ASSIGN_OR_RETURN(std::string session, NewSession());
  Client& client = job.clients[request.client_id()];
  if (!client.session.empty()) sessions_.erase(client.session);
  client.session = std::move(session);
  client.num_samples = std::max<int64_t>(1, request.num_samples());
  client.last_seen = options_.clock();
  sessions_[client.session] = absl::StrCat(job.id, "/", request.client_id());
  v1::RegisterClientResponse response;
  response.set_session_token(client.session);
  *response.mutable_base()->mutable_model() = job.model;
  *response.mutable_base()->mutable_peft() = job.peft;
  response.mutable_base()->set_checkpoint_sha256(job.base_sha256);
  if (job.task.has_value()) *response.mutable_task() = *job.task;
  SetDuration(options_.poll_interval, response.mutable_poll_interval());
  response.set_latest_round(job.history.empty() ? 0 : job.history.back().round());
  response.set_candidate_root(job.root);
  response.set_num_candidates(job.spec.num_candidate_seeds());
  AdvanceLocked(job);
  return response;
}

std::vector<double> RoundManager::SeedProbabilities(const Job& job) {
  const int K = job.spec.num_candidate_seeds();
  const double clip = job.spec.scalar_clip() > 0 ? job.spec.scalar_clip() : 1000.0;
  std::vector<double> sum(K, 0.0), count(K, 0.0);
  for (const v1::HistoryEntry& e : job.history) {
    for (int i = 0; i < e.seed_indices_size(); ++i) {
      const uint32_t k = e.seed_indices(i);
      if (k >= static_cast<uint32_t>(K)) continue;
      sum[k] += std::min(std::fabs(e.scalars(i)), clip);
      count[k] += 1;
    }
  }
  std::vector<double> p(K);
  for (int k = 0; k < K; ++k) p[k] = count[k] > 0 ? sum[k] / count[k] : 0.0;
  const auto [lo, hi] = std::minmax_element(p.begin(), p.end());
  const double low = *lo, span = *hi - *lo;
  double total = 0;
  for (double& v : p) {
    v = std::exp(span > 0 ? (v - low) / span : 0.0);
    total += v;
  }
  for (double& v : p) v /= total;
  return p;
}

int RoundManager::OnlineLocked(const Job& job) const {
  const absl::Time now = options_.clock();
  int online = 0;
  for (const auto& [id, c] : job.clients) online += now - c.last_seen <= options_.online_window;
  return online;
}

void RoundManager::AdvanceLocked(Job& job) {
  const absl::Time now = options_.clock();
  if (job.open) {
    bool all = true;
    for (const std::string& id : job.sampled) all = all && job.replies.count(id) > 0;
    if (all || now >= job.deadline) CloseLocked(job, !all);
  }
  if (job.open || job.finished) return;
  // Still running as a job?
  absl::StatusOr<v1::Job> full = options_.jobs->Get(job.id, "");
  if (!full.ok() || full->state() != v1::JOB_STATE_RUNNING) {
    job.finished = true;
    return;
  }
  const v1::FederatedSpec& spec = job.spec;
  std::vector<std::string> online;
  for (const auto& [id, c] : job.clients) {
    if (now - c.last_seen <= options_.online_window) online.push_back(id);  // Sorted by id.
  }
  const int needed = std::max({spec.min_available_nodes(), spec.min_train_nodes(), 1});
  if (static_cast<int>(online.size()) < needed) return;
  // Sample: a shuffle seeded by the job and the round, so the choice is reproducible.
  ++job.round;
  std::mt19937_64 rng(job.root ^ (0xD6E8FEB86659FD93ULL * static_cast<uint64_t>(job.round)));
  std::shuffle(online.begin(), online.end(), rng);
  const double fraction = spec.fraction_train() > 0 ? spec.fraction_train() : 1.0;
  int take = static_cast<int>(std::ceil(fraction * static_cast<double>(online.size())));
  take = std::clamp(take, std::max(spec.min_train_nodes(), 1), static_cast<int>(online.size()));
  job.sampled = std::set<std::string>(online.begin(), online.begin() + take);
  job.replies.clear();
  job.bytes.clear();
  job.open = true;
  const absl::Duration timeout = spec.has_round_timeout()
                                     ? absl::Seconds(spec.round_timeout().seconds()) +
                                           absl::Nanoseconds(spec.round_timeout().nanos())
                                     : absl::Minutes(10);
  job.deadline = now + timeout;
  job.probabilities.clear();
  if (spec.seed_probabilities()) job.probabilities = SeedProbabilities(job);
  v1::RoundInfo info;
  info.set_round(job.round);
  info.set_state(v1::ROUND_STATE_OPEN);
  info.set_sampled(take);
  SetTime(now, info.mutable_open_time());
  job.rounds.push_back(info);
  options_.store->PutRound(job.id, info, nullptr).IgnoreError();  // Recovery fails it anyway.
}

void RoundManager::CloseLocked(Job& job, bool timed_out) {
  const absl::Time now = options_.clock();
  v1::RoundInfo& info = CurrentInfo(job);
  int ok = 0;
  double weight_total = 0, loss_total = 0;
  std::map<uint32_t, double> sums;
  for (const auto& [id, reply] : job.replies) {  // Client-id order: a fixed summation order.
    if (reply.outcome != v1::PUSH_OUTCOME_ACCEPTED) continue;
    ++ok;
    const double w = static_cast<double>(std::max<int64_t>(1, reply.result.num_samples()));
    weight_total += w;
    loss_total += w * reply.result.local_loss();
    for (int i = 0; i < reply.result.seed_indices_size(); ++i) {
      sums[reply.result.seed_indices(i)] += w * static_cast<double>(reply.result.scalars(i));
    }
  }
  int replied = 0;
  for (const std::string& id : job.sampled) replied += job.replies.count(id) > 0;
  info.set_replies_ok(ok);
  info.set_timeouts(timed_out ? static_cast<int>(job.sampled.size()) - replied : 0);
  int64_t up = 0, down = 0;
  for (const auto& [id, b] : job.bytes) {
    up += b.first;
    down += b.second;
  }
  info.set_bytes_up(up);
  info.set_bytes_down(down);
  SetTime(now, info.mutable_close_time());
  job.open = false;
  round_seconds_.Observe(absl::ToDoubleSeconds(now - FromProto(info.open_time())));
  const int min_replies = std::max(job.spec.min_replies(), 1);
  std::string line;
  if (ok >= min_replies) {
    v1::HistoryEntry entry;
    entry.set_round(job.round);
    entry.set_lr(job.hyper.lr());
    entry.set_replies(ok);
    for (const auto& [index, sum] : sums) {  // Ascending seed index.
      entry.add_seed_indices(index);
      entry.add_scalars(sum / weight_total);
    }
    info.set_state(v1::ROUND_STATE_CLOSED);
    info.set_mean_loss(loss_total / weight_total);
    if (absl::Status s = options_.store->PutRound(job.id, info, &entry); !s.ok()) {
      // Not durable: the round fails rather than hand out an entry a restart would lose.
      info.set_state(v1::ROUND_STATE_FAILED);
      line = absl::StrCat("round ", job.round, " failed: ", s.ToString());
    } else {
      job.history.push_back(std::move(entry));
      line = absl::StrFormat("round %d closed: %d/%d replies, %d seeds, mean local loss %.4f",
                             job.round, ok, static_cast<int>(job.sampled.size()),
                             job.history.back().seed_indices_size(), info.mean_loss());
    }
  } else {
    info.set_state(v1::ROUND_STATE_FAILED);
    options_.store->PutRound(job.id, info, nullptr).IgnoreError();
    line = absl::StrFormat("round %d failed: %d valid replies of %d sampled (need %d)%s", job.round,
                           ok, static_cast<int>(job.sampled.size()), min_replies,
                           timed_out ? ", timed out" : "");
  }
  ++(info.state() == v1::ROUND_STATE_CLOSED ? rounds_closed_ : rounds_failed_);
  job.finished = job.round >= job.spec.num_rounds();
  options_.jobs
      ->OnFederatedRound(job.id, job.round,
                         info.state() == v1::ROUND_STATE_CLOSED ? info.mean_loss() : std::nan(""),
                         line, job.finished)
      .IgnoreError();
}

absl::StatusOr<v1::PullTaskResponse> RoundManager::PullTask(const v1::PullTaskRequest& request,
                                                            const std::string& session) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Job*> found = SessionLocked(request.job_id(), request.client_id(), session);
  if (!found.ok()) return found.status();
  STRATA_RETURN_IF_ERROR(
      SpendCallLocked((*found)->clients[request.client_id()], request.client_id()));
  Job& job = **found;
  AdvanceLocked(job);
  v1::PullTaskResponse response;
  const bool mine = job.open && job.sampled.count(request.client_id()) > 0 &&
                    job.replies.count(request.client_id()) == 0;
  if (!mine) {
    if (job.finished && !job.open) {
      response.set_finished(true);
    } else {
      SetDuration(options_.poll_interval, response.mutable_retry_after());
    }
    return response;
  }
  v1::Task* task = response.mutable_task();
  task->set_round(job.round);
  task->set_candidate_root(job.root);
  task->set_num_candidates(job.spec.num_candidate_seeds());
  *task->mutable_hyperparameters() = job.hyper;
  for (double p : job.probabilities) task->add_seed_probabilities(p);
  SetTime(job.deadline, task->mutable_deadline());
  for (const v1::HistoryEntry& e : job.history) {
    if (e.round() > request.replayed_round()) *task->add_history() = e;
  }
  return response;
}

absl::StatusOr<v1::PushResultResponse> RoundManager::PushResult(
    const v1::PushResultRequest& request, const std::string& session) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Job*> found = SessionLocked(request.job_id(), request.client_id(), session);
  if (!found.ok()) return found.status();
  STRATA_RETURN_IF_ERROR(
      SpendCallLocked((*found)->clients[request.client_id()], request.client_id()));
  Job& job = **found;
  AdvanceLocked(job);  // A deadline may have passed.
  v1::PushResultResponse response;
  auto answer = [&](v1::PushOutcome outcome, std::string message) {
    response.set_outcome(outcome);
    response.set_message(std::move(message));
    ++outcomes_[OutcomeName(outcome)];
    return response;
  };
  if (!job.open || request.round() != job.round) {
    if (job.open || job.round > 0) {
      for (v1::RoundInfo& info : job.rounds) {
        if (info.round() == request.round()) info.set_replies_late(info.replies_late() + 1);
      }
    }
    return answer(v1::PUSH_OUTCOME_LATE,
                  absl::StrCat("round ", request.round(), " is not open (current round ", job.round,
                               job.open ? ", open)" : ", closed)"));
  }
  if (job.sampled.count(request.client_id()) == 0) {
    return answer(v1::PUSH_OUTCOME_NOT_SAMPLED,
                  absl::StrCat(request.client_id(), " was not sampled for round ", job.round));
  }
  if (auto it = job.replies.find(request.client_id()); it != job.replies.end()) {
    const v1::PushOutcome first = it->second.outcome;
    return answer(first == v1::PUSH_OUTCOME_ACCEPTED ? v1::PUSH_OUTCOME_DUPLICATE : first,
                  "already answered this round; nothing changed");
  }
  // Validate before anything is kept.
  std::string problem;
  if (static_cast<int64_t>(request.ByteSizeLong()) > job.spec.max_request_bytes()) {
    problem =
        absl::StrCat("result of ", request.ByteSizeLong(),
                     " bytes exceeds federated.max_request_bytes = ", job.spec.max_request_bytes());
  } else if (request.seed_indices_size() != request.scalars_size()) {
    problem = "seed_indices and scalars differ in length";
  }
  std::set<uint32_t> seen;
  const double clip = job.spec.scalar_clip();
  if (problem.empty() && request.num_samples() > job.spec.max_num_samples()) {
    problem = absl::StrCat("num_samples ", request.num_samples(),
                           " exceeds federated.max_num_samples = ", job.spec.max_num_samples());
  }
  for (int i = 0; problem.empty() && i < request.seed_indices_size(); ++i) {
    const uint32_t index = request.seed_indices(i);
    const float g = request.scalars(i);
    if (index >= static_cast<uint32_t>(job.spec.num_candidate_seeds())) {
      problem =
          absl::StrCat("seed index ", index, " is not below K = ", job.spec.num_candidate_seeds());
    } else if (!seen.insert(index).second) {
      problem = absl::StrCat("seed index ", index, " appears twice");
    } else if (!std::isfinite(g)) {
      problem = absl::StrCat("scalar for seed index ", index, " is not finite");
    } else if (clip > 0 && std::fabs(g) > clip) {
      problem = absl::StrCat("scalar ", g, " for seed index ", index, " exceeds the clip ", clip);
    }
  }
  Reply& reply = job.replies[request.client_id()];
  if (!problem.empty()) {
    reply.outcome = v1::PUSH_OUTCOME_REJECTED;
    CurrentInfo(job).set_replies_rejected(CurrentInfo(job).replies_rejected() + 1);
    answer(v1::PUSH_OUTCOME_REJECTED, problem);
  } else {
    reply.outcome = v1::PUSH_OUTCOME_ACCEPTED;
    reply.result = request;
    reply.result.set_num_samples(request.num_samples() > 0
                                     ? request.num_samples()
                                     : job.clients[request.client_id()].num_samples);
    answer(v1::PUSH_OUTCOME_ACCEPTED, "");
  }
  AdvanceLocked(job);  // The last reply closes the round.
  return response;
}

absl::StatusOr<v1::SyncHistoryResponse> RoundManager::SyncHistory(
    const v1::SyncHistoryRequest& request, const std::string& session) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Job*> found = SessionLocked(request.job_id(), request.client_id(), session);
  if (!found.ok()) return found.status();
  STRATA_RETURN_IF_ERROR(
      SpendCallLocked((*found)->clients[request.client_id()], request.client_id()));
  const int max = request.max_entries() > 0 ? std::min(request.max_entries(), 10000) : 1000;
  v1::SyncHistoryResponse response;
  for (const v1::HistoryEntry& e : (*found)->history) {
    if (e.round() <= request.after_round()) continue;
    if (response.history_size() >= max) break;
    *response.add_history() = e;
  }
  response.set_latest_round((*found)->history.empty() ? 0 : (*found)->history.back().round());
  return response;
}

absl::StatusOr<v1::ListRoundsResponse> RoundManager::ListRounds(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Job*> found = FindLocked(job_id);
  if (!found.ok()) return found.status();
  v1::ListRoundsResponse response;
  for (const v1::RoundInfo& info : (*found)->rounds) *response.add_rounds() = info;
  return response;
}

void RoundManager::CountBytes(const std::string& job_id, const std::string& client_id, int64_t up,
                              int64_t down) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || !it->second->open) return;
  auto& b = it->second->bytes[client_id];
  b.first += up;
  b.second += down;
}

void RoundManager::Tick() {
  absl::MutexLock lock(&mu_);
  for (auto& [id, job] : jobs_) AdvanceLocked(*job);
}

void RoundManager::CollectMetrics(MetricsWriter* out) const {
  absl::MutexLock lock(&mu_);
  // Per-job series while the job's rounds go on; each family's samples together.
  std::vector<const Job*> active;
  for (const auto& [id, job] : jobs_) {
    if (!job->finished) active.push_back(job.get());
  }
  for (const Job* job : active) {
    out->Gauge("strata_federated_clients_online", "Clients seen within the online window.",
               {{"job_id", job->id}}, OnlineLocked(*job));
  }
  for (const Job* job : active) {
    out->Gauge("strata_federated_clients_sampled", "Clients sampled for the current round.",
               {{"job_id", job->id}}, job->open ? static_cast<double>(job->sampled.size()) : 0.0);
  }
  for (const Job* job : active) {
    out->Gauge("strata_federated_round", "The current (or last) round.", {{"job_id", job->id}},
               static_cast<double>(job->round));
  }
  // The latest closed round's mean bytes per sampled client.
  std::vector<std::pair<const Job*, const v1::RoundInfo*>> latest_closed;
  for (const Job* job : active) {
    for (auto info = job->rounds.rbegin(); info != job->rounds.rend(); ++info) {
      if (info->state() != v1::ROUND_STATE_CLOSED || info->sampled() == 0) continue;
      latest_closed.emplace_back(job, &*info);
      break;
    }
  }
  for (const auto& [job, info] : latest_closed) {
    out->Gauge("strata_federated_bytes_up_per_client",
               "Mean request bytes per sampled client in the latest closed round.",
               {{"job_id", job->id}}, static_cast<double>(info->bytes_up()) / info->sampled());
  }
  for (const auto& [job, info] : latest_closed) {
    out->Gauge("strata_federated_bytes_down_per_client",
               "Mean response bytes per sampled client in the latest closed round.",
               {{"job_id", job->id}}, static_cast<double>(info->bytes_down()) / info->sampled());
  }
  out->Counter("strata_federated_rounds_total",
               "Federated rounds ended by this coordinator: closed (an update applied) or failed.",
               {{"outcome", "closed"}}, static_cast<double>(rounds_closed_));
  out->Counter("strata_federated_rounds_total",
               "Federated rounds ended by this coordinator: closed (an update applied) or failed.",
               {{"outcome", "failed"}}, static_cast<double>(rounds_failed_));
  for (const char* outcome : {"ok", "duplicate", "late", "not_sampled", "rejected"}) {
    auto it = outcomes_.find(outcome);
    out->Counter("strata_federated_replies_total", "Client results by outcome.",
                 {{"outcome", outcome}}, it == outcomes_.end() ? 0.0 : it->second);
  }
  out->Counter("strata_federated_rate_limited_total",
               "Client calls refused for exceeding the per-client call rate.", {},
               static_cast<double>(rate_limited_));
  out->Counter("strata_federated_registrations_refused_total",
               "Client registrations refused (no enrollment token, num_samples over the bound).",
               {}, static_cast<double>(registrations_refused_));
  out->WriteHistogram("strata_federated_round_seconds", "Round duration, open to close.", {},
                      round_seconds_);
}

}  // namespace strata
