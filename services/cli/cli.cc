// See cli.h.
#include "services/cli/cli.h"

#include <cmath>
#include <map>
#include <memory>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "proto/strata/v1/federated_service.grpc.pb.h"
#include "proto/strata/v1/job_service.grpc.pb.h"
#include "proto/strata/v1/worker_service.grpc.pb.h"
#include "services/cli/export_writer.h"
#include "services/cli/job_config.h"
#include "services/common/grpc_status.h"
#include "services/common/job_state.h"
#include "services/common/main_util.h"

namespace strata {

const char kCliUsageText[] =
    "The Strata command line.\n"
    "\n"
    "Usage: strata [--coordinator=HOST:PORT] <command> [flags]\n"
    "\n"
    "Commands:\n"
    "  health [--service=NAME]   Ask the coordinator's health service; exit 0 if SERVING.\n"
    "  node list [--all]         Registered workers (--all includes lost ones).\n"
    "  node cordon NAME          Operators: place no new ranks on worker NAME.\n"
    "  node drain NAME           Operators: cordon NAME and move its jobs' ranks to other\n"
    "                            workers, each job checkpointing first.\n"
    "  node uncordon NAME        Operators: let NAME take new ranks again.\n"
    "  job submit CONFIG.yaml [--detach] [--config=key.path=value,...]\n"
    "                            Submit a job (docs/config.md) and follow its progress until it\n"
    "                            ends; exit 0 when it completes. --detach returns once queued.\n"
    "  job list                  Your jobs, newest first.\n"
    "  job describe ID           One job: state, placement, progress, evaluations (latest and\n"
    "                            best of each metric), restarts.\n"
    "  job checkpoints ID        The checkpoints the job keeps: step, path on its worker, age.\n"
    "  job export ID DIR         Download a completed job's export "
    "(checkpoint.export_safetensors:\n"
    "                            a Hugging Face directory) from its worker into DIR.\n"
    "  job logs ID [--follow] [--tail=N] [--rank=R,...]\n"
    "                            The job's log lines (ranks and coordinator).\n"
    "  job wait ID               Wait for the job to end; exit 0 if it completed.\n"
    "  job cancel ID [--reason=TEXT]  Checkpoint, then stop.\n"
    "  job kill ID [--reason=TEXT]    Stop at once, from any state.\n"
    "  round list --job=ID       A federated job's rounds: state, replies by outcome, bytes.\n"
    "  version                   Print the client version.\n"
    "\n"
    "The coordinator address comes from --coordinator, else STRATA_COORDINATOR, else\n"
    "localhost:7070; the token from --token, else STRATA_TOKEN. --output=json prints the\n"
    "API's JSON instead of a table.";

namespace {

std::string HumanBytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 5) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? absl::StrFormat("%d B", bytes)
                   : absl::StrFormat("%.1f %s", value, units[unit]);
}

std::string Ago(const google::protobuf::Timestamp& time) {
  const absl::Time then =
      absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(time));
  const int64_t seconds = absl::ToInt64Seconds(absl::Now() - then);
  return absl::StrFormat("%ds ago", seconds < 0 ? 0 : seconds);
}

// One metric of a job's evaluations: "0.7500 at step 40 (best 0.8750 at step 20)".
std::string EvalMetricText(const v1::EvalMetricSummary& s) {
  return absl::StrFormat("%.4f at step %d (best %.4f at step %d)", s.latest(), s.latest_step(),
                         s.best(), s.best_step());
}

// The best of each of the job's evaluation metrics, after its latest value (the held-out loss
// first, then the task metrics by name): ", eval loss 0.6000 (best 0.5000 at step 20), eval
// accuracy 0.7500 (best 0.8750 at step 20)". Empty before the first evaluation.
std::string EvalSummaryText(const v1::Job& job) {
  std::string loss, task;
  for (const v1::EvalMetricSummary& s : job.eval_metrics()) {
    absl::StrAppend(s.name() == "loss" ? &loss : &task,
                    absl::StrFormat(", eval %s %.4f (best %.4f at step %d)", s.name(), s.latest(),
                                    s.best(), s.best_step()));
  }
  return loss + task;
}

// The latest evaluation's task metrics, by name: " | accuracy 0.7500 | f1 0.6000".
std::string TaskMetricsText(const v1::JobProgress& p) {
  const std::map<std::string, double> sorted(p.eval_metrics().begin(), p.eval_metrics().end());
  std::string out;
  for (const auto& [name, value] : sorted) {
    absl::StrAppend(&out, absl::StrFormat(" | %s %.4f", name, value));
  }
  return out;
}

// Prints `rows` as left-aligned columns.
void PrintTable(const std::vector<std::vector<std::string>>& rows, std::ostream& out) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

class Cli {
 public:
  Cli(const CliOptions& options, std::ostream& out, std::ostream& err)
      : options_(options),
        out_(out),
        err_(err),
        channel_(
            grpc::CreateChannel(options.coordinator, options.credentials != nullptr
                                                         ? options.credentials
                                                         : grpc::InsecureChannelCredentials())) {}

  int Health() {
    auto stub = grpc::health::v1::Health::NewStub(channel_);
    grpc::ClientContext context;
    Prepare(&context);
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(options_.service);
    grpc::health::v1::HealthCheckResponse response;
    const grpc::Status status = stub->Check(&context, request, &response);
    if (!status.ok()) return RpcFailed(status, "Health.Check");
    const std::string what = options_.service.empty() ? "coordinator" : options_.service;
    const std::string state =
        grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
    out_ << what << " at " << options_.coordinator << ": " << state << "\n";
    return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kCliOk
                                                                               : kCliFailed;
  }

  int JobSubmit(const std::string& path) {
    absl::StatusOr<v1::JobSpec> spec = LoadJobConfig(path, options_.config_overrides);
    if (!spec.ok()) {
      err_ << "strata: " << spec.status().message() << "\n";
      return kCliUsage;
    }
    v1::SubmitJobRequest request;
    *request.mutable_spec() = *std::move(spec);
    request.set_request_id(RandomId());
    v1::SubmitJobResponse response;
    grpc::Status status;
    for (int attempt = 0; attempt < 3; ++attempt) {  // Idempotent: safe to retry.
      grpc::ClientContext context;
      Prepare(&context);
      status = Jobs()->Submit(&context, request, &response);
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE) break;
    }
    if (!status.ok()) return RpcFailed(status, "JobService.Submit");
    const v1::Job& job = response.job();
    if (options_.output == "json") PrintJson(job);
    out_ << "submitted job " << job.id() << " (" << job.spec().name()
         << "): " << StateName(job.state())
         << (job.state() == v1::JOB_STATE_QUEUED
                 ? absl::StrCat(", ", job.jobs_ahead(), " job(s) ahead")
                 : "")
         << "\n";
    if (options_.detach) return kCliOk;
    return Follow(job.id(), /*show_progress=*/true);
  }

  int JobWait(const std::string& id) { return Follow(id, /*show_progress=*/false); }

  int JobList() {
    // Every page: the coordinator ends a page at 100 jobs or at its byte bound.
    v1::ListJobsRequest request;
    request.set_page_size(100);
    v1::ListJobsResponse response;
    do {
      grpc::ClientContext context;
      Prepare(&context);
      v1::ListJobsResponse page;
      const grpc::Status status = Jobs()->List(&context, request, &page);
      if (!status.ok()) return RpcFailed(status, "JobService.List");
      for (v1::Job& job : *page.mutable_jobs()) *response.add_jobs() = std::move(job);
      request.set_page_token(page.next_page_token());
    } while (!request.page_token().empty());
    if (options_.output == "json") return PrintJson(response);
    std::vector<std::vector<std::string>> rows = {
        {"ID", "NAME", "STATE", "PRIORITY", "STEP", "LOSS", "WORKER", "SUBMITTED"}};
    for (const v1::Job& job : response.jobs()) {
      rows.push_back(
          {job.id(), job.spec().name(), StateName(job.state()),
           std::to_string(job.spec().priority()),
           absl::StrCat(job.progress().step(), "/", job.spec().training().max_steps()),
           job.progress().step() > 0 ? absl::StrFormat("%.4f", job.progress().loss()) : "-",
           job.placements().empty() ? "-" : job.placements(0).worker_id(), Ago(job.submit_time())});
    }
    PrintTable(rows, out_);
    return kCliOk;
  }

  // JobService.Get; false (with the error printed) when it failed.
  bool GetJob(const std::string& id, v1::Job* job) {
    grpc::ClientContext context;
    Prepare(&context);
    v1::GetJobRequest request;
    request.set_job_id(id);
    const grpc::Status status = Jobs()->Get(&context, request, job);
    if (!status.ok()) RpcFailed(status, "JobService.Get");
    return status.ok();
  }

  int JobExport(const std::string& id, const std::string& dir) {
    grpc::ClientContext context;
    Prepare(&context, /*deadline=*/false);  // Large exports take as long as they take.
    v1::ExportJobRequest request;
    request.set_job_id(id);
    std::unique_ptr<grpc::ClientReader<v1::ExportChunk>> reader = Jobs()->Export(&context, request);
    ExportWriter writer(dir);
    v1::ExportChunk chunk;
    bool finished = false;
    while (reader->Read(&chunk)) {
      if (absl::Status s = writer.Write(chunk); !s.ok()) {
        context.TryCancel();
        reader->Finish();
        err_ << "strata: export of " << id << " into " << dir << ": " << s.message() << "\n";
        return kCliFailed;
      }
      finished = finished || chunk.finished();
    }
    const grpc::Status status = reader->Finish();
    if (!status.ok()) return RpcFailed(status, "JobService.Export");
    if (!finished) {
      err_ << "strata: the export of " << id << " ended early\n";
      return kCliFailed;
    }
    out_ << "exported job " << id << " into " << dir << ": " << writer.files().size() << " files, "
         << writer.bytes() << " bytes (" << absl::StrJoin(writer.files(), ", ") << ")\n";
    return kCliOk;
  }

  int JobCheckpoints(const std::string& id) {
    v1::Job job;
    if (!GetJob(id, &job)) return kCliFailed;
    v1::Job only;
    *only.mutable_checkpoints() = job.checkpoints();
    if (options_.output == "json") return PrintJson(only);
    std::vector<std::vector<std::string>> rows = {{"STEP", "PATH", "WORKER", "AGE"}};
    for (const v1::CheckpointInfo& c : job.checkpoints()) {
      rows.push_back({std::to_string(c.step()), c.path(), c.worker_id(), Ago(c.time())});
    }
    PrintTable(rows, out_);
    return kCliOk;
  }

  int JobDescribe(const std::string& id) {
    v1::Job job;
    if (!GetJob(id, &job)) return kCliFailed;
    if (options_.output == "json") return PrintJson(job);
    const v1::JobProgress& p = job.progress();
    const bool federated = job.spec().has_federated() && job.spec().federated().num_rounds() > 0;
    std::vector<std::vector<std::string>> rows = {
        {"id:", job.id()},
        {"name:", job.spec().name()},
        {"state:", StateName(job.state()) + (job.state() == v1::JOB_STATE_QUEUED
                                                 ? absl::StrCat(" (", job.jobs_ahead(), " ahead)")
                                                 : "")},
        {"message:", job.message()},
        {"priority:", std::to_string(job.spec().priority())},
        {"optimizer:", job.spec().optimizer().has_zeroth_order() ? "zeroth-order" : "adamw"},
        {"attempt:", absl::StrCat(job.attempt(), " (", job.restarts(), " restart(s) of ",
                                  job.spec().max_restarts(), " allowed)")},
        {"progress:",
         federated ? absl::StrCat(p.round(), "/", job.spec().federated().num_rounds(), " rounds")
                   : absl::StrCat(p.step(), "/", job.spec().training().max_steps(), " steps")},
        {"loss:",
         p.step() > 0 || (federated && p.round() > 0) ? absl::StrFormat("%.4f", p.loss()) : "-"},
        {"eval loss:", std::isnan(p.eval_loss()) || p.eval_loss() == 0
                           ? "-"
                           : absl::StrFormat("%.4f", p.eval_loss())},
    };
    // Each evaluation metric's latest and best (the loss's on the eval loss line).
    const size_t eval_loss_row = rows.size() - 1;
    for (const v1::EvalMetricSummary& s : job.eval_metrics()) {
      if (s.name() == "loss") {
        rows[eval_loss_row][1] = EvalMetricText(s);
      } else {
        rows.push_back({absl::StrCat("eval ", s.name(), ":"), EvalMetricText(s)});
      }
    }
    rows.insert(rows.end(),
                {
                    {"lr:", p.step() > 0 ? absl::StrFormat("%g", p.lr()) : "-"},
                    {"tokens/s:", absl::StrFormat("%.0f", p.tokens_per_second())},
                    {"checkpoint:", job.has_latest_checkpoint()
                                        ? absl::StrCat("step ", job.latest_checkpoint().step(),
                                                       " at ", job.latest_checkpoint().path())
                                        : "-"},
                    {"submitted:", Ago(job.submit_time())},
                });
    for (const v1::RankPlacement& placement : job.placements()) {
      rows.push_back({absl::StrCat("rank ", placement.rank(), ":"), placement.worker_id()});
    }
    if (federated) {
      // The latest rounds (all of them: `strata round list`).
      v1::ListRoundsResponse rounds;
      if (ListRounds(id, &rounds).ok()) {
        for (int i = std::max(0, rounds.rounds_size() - 3); i < rounds.rounds_size(); ++i) {
          rows.push_back({absl::StrCat("round ", rounds.rounds(i).round(), ":"),
                          RoundSummary(rounds.rounds(i))});
        }
      }
    }
    PrintTable(rows, out_);
    return kCliOk;
  }

  int RoundList() {
    if (options_.job.empty()) {
      err_ << "strata: round list needs --job=ID\n";
      return kCliUsage;
    }
    v1::ListRoundsResponse response;
    const grpc::Status status = ListRounds(options_.job, &response);
    if (!status.ok()) return RpcFailed(status, "FederatedService.ListRounds");
    if (options_.output == "json") return PrintJson(response);
    std::vector<std::vector<std::string>> rows = {{"ROUND", "STATE", "SAMPLED", "OK", "REJECTED",
                                                   "LATE", "TIMEOUTS", "UP/CLIENT", "DOWN/CLIENT",
                                                   "SECONDS", "LOSS"}};
    for (const v1::RoundInfo& r : response.rounds()) {
      const int n = std::max(1, r.sampled());
      const bool closed = r.has_close_time();
      rows.push_back(
          {std::to_string(r.round()), RoundStateName(r.state()), std::to_string(r.sampled()),
           std::to_string(r.replies_ok()), std::to_string(r.replies_rejected()),
           std::to_string(r.replies_late()), std::to_string(r.timeouts()),
           closed ? HumanBytes(r.bytes_up() / n) : "-",
           closed ? HumanBytes(r.bytes_down() / n) : "-",
           closed ? absl::StrFormat("%.2f", Seconds(r.close_time()) - Seconds(r.open_time())) : "-",
           r.state() == v1::ROUND_STATE_CLOSED ? absl::StrFormat("%.4f", r.mean_loss()) : "-"});
    }
    PrintTable(rows, out_);
    return kCliOk;
  }

  int JobLogs(const std::string& id) {
    grpc::ClientContext context;
    Prepare(&context, /*deadline=*/!options_.follow);
    v1::JobLogsRequest request;
    request.set_job_id(id);
    request.set_follow(options_.follow);
    request.set_tail(options_.tail);
    for (int r : options_.ranks) request.add_ranks(r);
    std::unique_ptr<grpc::ClientReader<v1::LogLine>> reader = Jobs()->Logs(&context, request);
    v1::LogLine line;
    while (reader->Read(&line)) {
      out_ << (line.rank() < 0 ? std::string("[coordinator] ")
                               : absl::StrCat("[rank ", line.rank(), "] "))
           << line.text() << "\n";
      out_.flush();
    }
    const grpc::Status status = reader->Finish();
    if (!status.ok()) return RpcFailed(status, "JobService.Logs");
    return kCliOk;
  }

  int JobStop(const std::string& id, bool kill) {
    grpc::ClientContext context;
    Prepare(&context);
    v1::Job job;
    grpc::Status status;
    if (kill) {
      v1::KillJobRequest request;
      request.set_job_id(id);
      request.set_reason(options_.reason);
      status = Jobs()->Kill(&context, request, &job);
    } else {
      v1::CancelJobRequest request;
      request.set_job_id(id);
      request.set_reason(options_.reason);
      status = Jobs()->Cancel(&context, request, &job);
    }
    if (!status.ok()) return RpcFailed(status, kill ? "JobService.Kill" : "JobService.Cancel");
    out_ << "job " << job.id() << ": " << StateName(job.state()) << "\n";
    return kCliOk;
  }

  grpc::Status ListRounds(const std::string& job_id, v1::ListRoundsResponse* response) {
    auto stub = v1::FederatedService::NewStub(channel_);
    grpc::ClientContext context;
    Prepare(&context);
    v1::ListRoundsRequest request;
    request.set_job_id(job_id);
    return stub->ListRounds(&context, request, response);
  }

  static std::string RoundStateName(v1::RoundState state) {
    return EnumSuffix(v1::RoundState_Name(state), "ROUND_STATE_");
  }

  static double Seconds(const google::protobuf::Timestamp& t) {
    return static_cast<double>(t.seconds()) + 1e-9 * t.nanos();
  }

  static std::string RoundSummary(const v1::RoundInfo& r) {
    return absl::StrFormat("%s, %d/%d replies ok, %d rejected, %d late, %d timed out",
                           RoundStateName(r.state()), r.replies_ok(), r.sampled(),
                           r.replies_rejected(), r.replies_late(), r.timeouts());
  }

  int NodeList() {
    auto stub = v1::WorkerService::NewStub(channel_);
    grpc::ClientContext context;
    Prepare(&context);
    v1::ListWorkersRequest request;
    request.set_include_lost(options_.all);
    v1::ListWorkersResponse response;
    const grpc::Status status = stub->ListWorkers(&context, request, &response);
    if (!status.ok()) return RpcFailed(status, "WorkerService.ListWorkers");
    if (options_.output == "json") return PrintJson(response);
    std::vector<std::vector<std::string>> rows = {
        {"ID", "NAME", "ADDRESS", "CORES", "MEMORY", "GPUS", "NVME", "STATE", "HEARTBEAT"}};
    for (const v1::WorkerInfo& worker : response.workers()) {
      int64_t nvme = 0;
      for (const v1::NvmePath& path : worker.free().nvme_paths()) nvme += path.free_bytes();
      rows.push_back({worker.worker_id(), worker.name(), worker.address(),
                      std::to_string(worker.capacity().cores()),
                      HumanBytes(worker.capacity().memory_bytes()),
                      std::to_string(worker.capacity().gpus_size()),
                      worker.capacity().nvme_paths_size() == 0 ? "-" : HumanBytes(nvme) + " free",
                      worker.lost()       ? "lost"
                      : worker.cordoned() ? "cordoned"
                                          : "ready",
                      Ago(worker.last_heartbeat())});
    }
    PrintTable(rows, out_);
    return kCliOk;
  }

  int NodeCordon(const std::string& name, bool cordoned) {
    auto stub = v1::WorkerService::NewStub(channel_);
    grpc::ClientContext context;
    Prepare(&context);
    v1::SetCordonRequest request;
    request.set_name(name);
    request.set_cordoned(cordoned);
    v1::SetCordonResponse response;
    const grpc::Status status = stub->SetCordon(&context, request, &response);
    if (!status.ok()) return RpcFailed(status, "WorkerService.SetCordon");
    out_ << "worker " << name << (cordoned ? " cordoned: no new ranks are placed there\n"
                                           : " uncordoned: it takes new ranks again\n");
    return kCliOk;
  }

  int NodeDrain(const std::string& name) {
    auto stub = v1::WorkerService::NewStub(channel_);
    grpc::ClientContext context;
    Prepare(&context);
    v1::DrainWorkerRequest request;
    request.set_name(name);
    v1::DrainWorkerResponse response;
    const grpc::Status status = stub->Drain(&context, request, &response);
    if (!status.ok()) return RpcFailed(status, "WorkerService.Drain");
    if (options_.output == "json") return PrintJson(response);
    out_ << "worker " << name << " cordoned and draining: ";
    if (response.job_ids().empty()) {
      out_ << "no jobs run there\n";
    } else {
      out_ << response.job_ids_size() << " job(s) checkpoint and restart elsewhere: "
           << absl::StrJoin(response.job_ids(), ", ") << "\n";
    }
    return kCliOk;
  }

 private:
  void SetDeadline(grpc::ClientContext* context) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
  }

  // Deadline (unless streaming without end) and the bearer token.
  void Prepare(grpc::ClientContext* context, bool deadline = true) {
    if (deadline) SetDeadline(context);
    if (!options_.token.empty()) {
      context->AddMetadata("authorization", "Bearer " + options_.token);
    }
  }

  v1::JobService::Stub* Jobs() {
    if (jobs_ == nullptr) jobs_ = v1::JobService::NewStub(channel_);
    return jobs_.get();
  }

  static std::string RandomId() {
    std::random_device rd;
    return absl::StrFormat("%08x%08x", rd(), rd());
  }

  // Follows a job to its end (reconnecting while the coordinator restarts); progress lines or
  // a redrawn bar when `show_progress`. Exit 0 iff the job completed.
  int Follow(const std::string& id, bool show_progress) {
    v1::Job last;
    int failures = 0;
    while (true) {
      grpc::ClientContext context;
      Prepare(&context, /*deadline=*/false);
      v1::WatchJobRequest request;
      request.set_job_id(id);
      request.set_include_progress(show_progress);
      std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader = Jobs()->Watch(&context, request);
      v1::JobEvent event;
      while (reader->Read(&event)) {
        failures = 0;
        if (event.has_job()) last = event.job();
        if (event.has_progress()) *last.mutable_progress() = event.progress();
        if (event.has_state_change() && event.state_change().from() != v1::JOB_STATE_UNSPECIFIED) {
          EndBar();
          out_ << "job " << id << ": " << StateName(event.state_change().from()) << " -> "
               << StateName(event.state_change().to())
               << (event.state_change().reason().empty()
                       ? ""
                       : " (" + event.state_change().reason() + ")")
               << "\n";
        }
        if (show_progress && last.progress().step() > 0) ShowProgress(last);
        if (IsTerminal(last.state())) break;
      }
      const grpc::Status status = reader->Finish();
      if (IsTerminal(last.state())) break;
      if (status.ok()) continue;
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE || ++failures > 60) {
        EndBar();
        return RpcFailed(status, "JobService.Watch");
      }
      absl::SleepFor(absl::Seconds(1));  // The coordinator may be restarting.
    }
    EndBar();
    const v1::JobProgress& p = last.progress();
    out_ << "job " << id << " " << StateName(last.state());
    if (p.step() > 0) out_ << absl::StrFormat(" after %d steps: loss %.4f", p.step(), p.loss());
    const std::string evaluations = EvalSummaryText(last);
    if (!evaluations.empty()) {
      out_ << evaluations;
    } else if (!std::isnan(p.eval_loss()) && p.eval_loss() != 0) {
      out_ << absl::StrFormat(", eval loss %.4f", p.eval_loss());
    }
    if (!last.message().empty()) out_ << " (" << last.message() << ")";
    out_ << "\n";
    return last.state() == v1::JOB_STATE_COMPLETED ? kCliOk : kCliFailed;
  }

  void ShowProgress(const v1::Job& job) {
    const v1::JobProgress& p = job.progress();
    const int64_t max = std::max<int64_t>(1, job.spec().training().max_steps());
    const int width = 30;
    const int filled = static_cast<int>(std::min<int64_t>(width, p.step() * width / max));
    std::string line =
        absl::StrFormat("[%s%s] %d/%d steps | loss %.4f%s%s | %.0f tok/s",
                        std::string(filled, '#'), std::string(width - filled, '-'), p.step(), max,
                        p.loss(),
                        std::isnan(p.eval_loss()) || p.eval_loss() == 0
                            ? ""
                            : absl::StrFormat(" | eval %.4f", p.eval_loss()),
                        TaskMetricsText(p), p.tokens_per_second());
    if (options_.progress_bar) {
      out_ << "\r" << line << "\x1b[K";
      bar_open_ = true;
    } else if (p.step() != last_printed_step_) {
      out_ << line << "\n";
    }
    last_printed_step_ = p.step();
    out_.flush();
  }

  void EndBar() {
    if (bar_open_) out_ << "\n";
    bar_open_ = false;
  }

  int RpcFailed(const grpc::Status& status, const char* rpc) {
    err_ << "strata: coordinator " << options_.coordinator << ": "
         << FromGrpcStatus(status, rpc).ToString() << "\n";
    return kCliFailed;
  }

  int PrintJson(const google::protobuf::Message& message) {
    std::string json;
    google::protobuf::util::JsonPrintOptions print;
    print.add_whitespace = true;
    print.preserve_proto_field_names = true;
    if (!google::protobuf::util::MessageToJsonString(message, &json, print).ok()) {
      err_ << "strata: cannot format the response as JSON\n";
      return kCliFailed;
    }
    out_ << json;
    return kCliOk;
  }

  const CliOptions& options_;
  std::ostream& out_;
  std::ostream& err_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  bool bar_open_ = false;
  int64_t last_printed_step_ = -1;
};

}  // namespace

int RunCli(const std::vector<std::string>& args, const CliOptions& options, std::ostream& out,
           std::ostream& err) {
  if (options.output != "table" && options.output != "json") {
    err << "strata: --output must be table or json, got \"" << options.output << "\"\n";
    return kCliUsage;
  }
  Cli cli(options, out, err);
  if (args == std::vector<std::string>{"version"}) {
    out << StrataVersion() << "\n";
    return kCliOk;
  }
  if (args == std::vector<std::string>{"health"}) return cli.Health();
  if (args == std::vector<std::string>{"node", "list"}) return cli.NodeList();
  if (args.size() == 3 && args[0] == "node") {
    if (args[1] == "cordon") return cli.NodeCordon(args[2], /*cordoned=*/true);
    if (args[1] == "uncordon") return cli.NodeCordon(args[2], /*cordoned=*/false);
    if (args[1] == "drain") return cli.NodeDrain(args[2]);
  }
  if (args == std::vector<std::string>{"round", "list"}) return cli.RoundList();
  if (args.size() >= 2 && args[0] == "job") {
    const std::string& verb = args[1];
    if (verb == "list" && args.size() == 2) return cli.JobList();
    if (args.size() == 3) {
      const std::string& arg = args[2];
      if (verb == "submit") return cli.JobSubmit(arg);
      if (verb == "describe") return cli.JobDescribe(arg);
      if (verb == "checkpoints") return cli.JobCheckpoints(arg);
      if (verb == "logs") return cli.JobLogs(arg);
      if (verb == "wait") return cli.JobWait(arg);
      if (verb == "cancel") return cli.JobStop(arg, /*kill=*/false);
      if (verb == "kill") return cli.JobStop(arg, /*kill=*/true);
    }
    if (args.size() == 4 && verb == "export") return cli.JobExport(args[2], args[3]);
  }
  if (args.empty()) {
    err << kCliUsageText << "\n";
  } else {
    err << "strata: unknown command \"" << absl::StrJoin(args, " ")
        << "\"; run `strata --help` for the list of commands\n";
  }
  return kCliUsage;
}

}  // namespace strata
