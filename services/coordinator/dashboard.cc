// See dashboard.h.
#include "services/coordinator/dashboard.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/time/time.h"
#include "google/protobuf/util/time_util.h"
#include "nlohmann/json.hpp"
#include "services/common/job_state.h"

namespace strata {

// Generated from dashboard/ (dashboard_assets.cc).
extern const char kDashboardIndexHtml[];
extern const char kDashboardDashboardJs[];
extern const char kDashboardDashboardCss[];

namespace {

using google::protobuf::util::TimeUtil;
using nlohmann::json;

json Number(double value) { return std::isfinite(value) ? json(value) : json(nullptr); }

std::string Time(const google::protobuf::Timestamp& t) { return TimeUtil::ToString(t); }

json JobJson(const DashboardSources& sources, const JobManager::JobView& view) {
  constexpr int kRounds = 10;
  const v1::Job& job = view.job;
  const v1::JobProgress& p = job.progress();
  const bool federated = job.spec().has_federated() && job.spec().federated().num_rounds() > 0;
  json out = {
      {"id", job.id()},
      {"name", job.spec().name()},
      {"owner", view.owner},
      {"state", StateName(job.state())},
      {"priority", job.spec().priority()},
      {"jobs_ahead", job.jobs_ahead()},
      {"message", job.message()},
      {"step", p.step()},
      {"max_steps", job.spec().training().max_steps()},
      {"loss", Number(p.loss())},
      {"eval_loss", Number(p.eval_loss())},
      {"tokens_per_second", Number(p.tokens_per_second())},
      {"restarts", job.restarts()},
      {"attempt", job.attempt()},
      {"federated", federated},
      {"round", p.round()},
      {"num_rounds", federated ? job.spec().federated().num_rounds() : 0},
      {"submit_time", Time(job.submit_time())},
  };
  std::set<std::string> workers;
  for (const v1::RankPlacement& placement : job.placements()) workers.insert(placement.worker_id());
  out["workers"] = json(std::vector<std::string>(workers.begin(), workers.end()));
  // The latest evaluation's task metrics (by name), and every metric's latest and best so far.
  out["eval_step"] = p.eval_step();
  json metrics = json::object();
  for (const auto& [name, value] : p.eval_metrics()) metrics[name] = Number(value);
  out["eval_metrics"] = std::move(metrics);
  json summary = json::array();
  for (const v1::EvalMetricSummary& s : job.eval_metrics()) {
    summary.push_back({{"name", s.name()},
                       {"latest", Number(s.latest())},
                       {"latest_step", s.latest_step()},
                       {"best", Number(s.best())},
                       {"best_step", s.best_step()}});
  }
  out["eval_summary"] = std::move(summary);
  json curve = json::array();
  for (const JobManager::CurvePoint& point : view.curve) {
    curve.push_back(
        {{"step", point.step}, {"loss", Number(point.loss)}, {"eval_loss", Number(point.eval_loss)}});
  }
  out["curve"] = std::move(curve);
  json events = json::array();
  for (const v1::LogLine& line : view.events) {
    events.push_back({{"time", Time(line.time())},
                      {"level", EnumSuffix(v1::LogLevel_Name(line.level()), "LOG_LEVEL_")},
                      {"text", line.text()}});
  }
  out["events"] = std::move(events);
  json rounds = json::array();
  if (federated && sources.rounds != nullptr) {
    absl::StatusOr<v1::ListRoundsResponse> listed = sources.rounds->ListRounds(job.id());
    if (listed.ok()) {
      const int first = std::max(0, listed->rounds_size() - kRounds);
      for (int i = listed->rounds_size() - 1; i >= first; --i) {
        const v1::RoundInfo& r = listed->rounds(i);
        rounds.push_back({{"round", r.round()},
                          {"state", EnumSuffix(v1::RoundState_Name(r.state()), "ROUND_STATE_")},
                          {"sampled", r.sampled()},
                          {"replies_ok", r.replies_ok()},
                          {"replies_late", r.replies_late()},
                          {"replies_rejected", r.replies_rejected()},
                          {"mean_loss", Number(r.mean_loss())},
                          {"bytes_up", r.bytes_up()},
                          {"bytes_down", r.bytes_down()}});
      }
    }
  }
  out["rounds"] = std::move(rounds);
  return out;
}

HttpReply Asset(const char* content_type, const char* body) {
  HttpReply reply;
  reply.content_type = content_type;
  reply.body = body;
  return reply;
}

HttpReply JsonError(int status, const std::string& message) {
  HttpReply reply;
  reply.status = status;
  reply.content_type = "application/json";
  reply.body = json({{"error", message}}).dump();
  return reply;
}

}  // namespace

std::string DashboardJson(const DashboardSources& sources, const std::string& user,
                          bool is_operator) {
  const absl::Time now = absl::Now();
  // Ranks, cores and memory per worker count every job's placements (what the scheduler
  // reserves); only these sums are shown to users.
  struct Reserved {
    int ranks = 0;
    int64_t cores = 0;
    int64_t memory_bytes = 0;
  };
  const std::vector<JobManager::JobView> shown =
      sources.jobs->Dashboard(is_operator ? "" : user, sources.recent_finished);
  std::map<std::string, Reserved> reserved;
  // An operator's view already holds every unfinished job; a user's does not.
  std::vector<JobManager::JobView> everyone;
  if (!is_operator) everyone = sources.jobs->Dashboard("", 0);
  for (const JobManager::JobView& view : is_operator ? shown : everyone) {
    if (!HoldsResources(view.job.state())) continue;
    const v1::Resources& r = view.job.spec().resources();
    for (const v1::RankPlacement& p : view.job.placements()) {
      Reserved& sum = reserved[p.worker_id()];
      ++sum.ranks;
      sum.cores += r.cores_per_rank();
      sum.memory_bytes += r.memory_bytes_per_rank();
    }
  }
  const std::set<std::string> cordoned = sources.jobs->Cordoned();
  json workers = json::array();
  const v1::ListWorkersResponse listed = sources.registry->List(/*include_lost=*/true);
  for (const v1::WorkerInfo& w : listed.workers()) {
    int64_t nvme_free = 0;
    for (const v1::NvmePath& path : w.free().nvme_paths()) nvme_free += path.free_bytes();
    const absl::Time beat = absl::FromUnixNanos(TimeUtil::TimestampToNanoseconds(w.last_heartbeat()));
    const Reserved& used = reserved[w.worker_id()];
    workers.push_back({
        {"name", w.name()},
        {"state", w.lost() ? "lost" : cordoned.count(w.worker_id()) ? "cordoned" : "ready"},
        {"cores", w.capacity().cores()},
        {"free_cores", std::max<int64_t>(0, w.capacity().cores() - used.cores)},
        {"memory_bytes", w.capacity().memory_bytes()},
        {"free_memory_bytes",
         std::max<int64_t>(0, w.capacity().memory_bytes() - used.memory_bytes)},
        {"gpus", w.capacity().gpus_size()},
        {"nvme_paths", w.capacity().nvme_paths_size()},
        {"nvme_free_bytes", nvme_free},
        {"ranks", used.ranks},
        {"heartbeat_age_s", absl::ToDoubleSeconds(now - beat)},
    });
  }
  json jobs = json::array();
  for (const JobManager::JobView& view : shown) jobs.push_back(JobJson(sources, view));
  json out = {{"user", user},
              {"operator", is_operator},
              {"time", absl::ToDoubleSeconds(now - absl::UnixEpoch())},
              {"workers", std::move(workers)},
              {"jobs", std::move(jobs)}};
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::map<std::string, HttpGetHandler> DashboardPages(DashboardSources sources) {
  std::map<std::string, HttpGetHandler> pages;
  pages["/"] = [](const HttpGet&) {
    return Asset("text/html; charset=utf-8", kDashboardIndexHtml);
  };
  pages["/dashboard.js"] = [](const HttpGet&) {
    return Asset("text/javascript; charset=utf-8", kDashboardDashboardJs);
  };
  pages["/dashboard.css"] = [](const HttpGet&) {
    return Asset("text/css; charset=utf-8", kDashboardDashboardCss);
  };
  pages["/api/v1/dashboard"] = [sources](const HttpGet& get) {
    std::string user;
    bool is_operator = true;
    if (sources.tokens != nullptr) {
      const std::string token = BearerToken(get.authorization);
      if (grpc::Status s = sources.tokens->UserForToken(token, &user); !s.ok()) {
        return JsonError(401, s.error_message());
      }
      is_operator = sources.tokens->IsOperator(user);
    }
    HttpReply reply;
    reply.content_type = "application/json";
    reply.body = DashboardJson(sources, user, is_operator);
    return reply;
  };
  return pages;
}

}  // namespace strata
