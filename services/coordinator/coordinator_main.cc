// strata-coordinator: serves the Strata v1 API (JobService, WorkerService, FederatedService)
// with gRPC health checking and reflection. Runs until SIGINT/SIGTERM, then drains calls.
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "proto/strata/v1/federated_service.grpc.pb.h"
#include "proto/strata/v1/job_service.grpc.pb.h"
#include "runtime/base/logging.h"
#include "runtime/base/status_macros.h"
#include "services/common/grpc_server.h"
#include "services/common/main_util.h"
#include "services/common/metrics.h"
#include "services/common/tls.h"

ABSL_DECLARE_FLAG(bool, insecure);
#include "services/coordinator/dashboard.h"
#include "services/coordinator/federated_service.h"
#include "services/coordinator/job_manager.h"
#include "services/coordinator/job_service.h"
#include "services/coordinator/job_store.h"
#include "services/coordinator/rendezvous_store.h"
#include "services/coordinator/round_manager.h"
#include "services/coordinator/tokens.h"
#include "services/coordinator/transfer_relay.h"
#include "services/coordinator/worker_registry.h"
#include "services/coordinator/worker_service.h"
#include "services/jobspec/job_paths.h"

ABSL_FLAG(std::string, listen, "[::]:7070",
          "Address the gRPC API listens on (host:port; port 0 picks a free port).");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound port is written to this file once the server is ready.");
ABSL_FLAG(absl::Duration, heartbeat_interval, absl::Seconds(2),
          "How often workers are told to heartbeat.");
ABSL_FLAG(absl::Duration, heartbeat_timeout, absl::Seconds(10),
          "A worker silent for longer than this is declared lost.");
ABSL_FLAG(std::string, data_dir, "strata-coordinator-data",
          "Directory of the coordinator's state (jobs.db, SQLite). Created if missing; a "
          "restarted coordinator recovers every unfinished job from it.");
ABSL_FLAG(std::string, tokens_file, "",
          "File of user tokens, one \"TOKEN USER\" pair per line ('#' comments). When set, "
          "JobService calls need \"authorization: Bearer TOKEN\" and users see only their "
          "own jobs.");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9090",
          "host:port of the HTTP operator endpoint (/metrics, /healthz, /readyz and the "
          "dashboard at /); port 0 picks one; empty disables it.");
ABSL_FLAG(bool, metrics_tls, false,
          "Serve the operator endpoint (metrics, health, dashboard) over HTTPS with --tls_cert "
          "and --tls_key instead of plain HTTP.");
ABSL_FLAG(std::string, metrics_port_file, "",
          "If set, the operator endpoint's port is written here once it listens.");
ABSL_FLAG(std::string, worker_tokens_file, "",
          "File of worker tokens, one \"TOKEN WORKER_NAME\" pair per line (NAME \"*\": any "
          "worker). When set, WorkerService calls need the worker's token (TLS only).");
ABSL_FLAG(bool, allow_unauthenticated_workers, false,
          "Development only: start without --worker_tokens_file. Then any client can register "
          "as any worker, receive its ranks' orders (with their job specs) and report for them.");
ABSL_FLAG(std::string, client_tokens_file, "",
          "Enrollment tokens of federated clients: \"TOKEN CLIENT_ID\" lines (\"*\": any id). "
          "Without it (and without --open_enrollment) no client can register.");
ABSL_FLAG(bool, open_enrollment, false,
          "Development only: federated clients register without an enrollment token.");
ABSL_FLAG(double, client_rate_limit, 20,
          "Federated clients: pull/push/sync calls per second per client and job (bursts of "
          "twice that); beyond it RESOURCE_EXHAUSTED. 0: no limit.");
ABSL_FLAG(absl::Duration, client_online_window, absl::Seconds(30),
          "A federated client counts as online (can be sampled) this long after its last call.");
ABSL_FLAG(absl::Duration, kill_grace, absl::Seconds(60),
          "A stopped job (kill, failure teardown) whose ranks no worker confirms within this "
          "long ends anyway; a worker reporting them later is told to stop them.");
ABSL_FLAG(std::vector<std::string>, data_roots, {},
          "The cluster's read-only data roots (comma-separated, absolute): the only absolute "
          "paths a job spec may read (datasets, base models). Mount them at the same paths on "
          "every worker (strata-worker --data_roots).");
ABSL_FLAG(absl::Duration, adopt_timeout, absl::Seconds(30),
          "A started job whose ranks no worker reports within this long is restarted.");

namespace strata {
namespace {

constexpr char kUsage[] =
    "Schedules Strata training jobs across worker daemons.\n"
    "\n"
    "Usage: strata-coordinator [--listen=HOST:PORT] [--port_file=PATH] [flags]\n"
    "\n"
    "Serves strata.v1.JobService, WorkerService and FederatedService, plus\n"
    "grpc.health.v1.Health and server reflection, on --listen.";

absl::Status Run() {
  WorkerRegistry::Options registry_options;
  registry_options.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat_interval);
  registry_options.heartbeat_timeout = absl::GetFlag(FLAGS_heartbeat_timeout);
  absl::StatusOr<std::unique_ptr<WorkerRegistry>> registry =
      WorkerRegistry::Create(registry_options);
  if (!registry.ok()) return UsageError(registry.status());
  absl::StatusOr<TokenTable> tokens =
      TokenTable::Load(absl::GetFlag(FLAGS_tokens_file), absl::GetFlag(FLAGS_worker_tokens_file));
  if (!tokens.ok()) return UsageError(tokens.status());
  if (!tokens->has_workers()) {
    if (!absl::GetFlag(FLAGS_allow_unauthenticated_workers)) {
      return UsageError(absl::InvalidArgumentError(
          "workers must be authenticated: pass --worker_tokens_file (one \"TOKEN WORKER_NAME\" "
          "line per worker; docs/operations.md), or --allow_unauthenticated_workers for "
          "development"));
    }
    STRATA_LOG(WARNING) << "--allow_unauthenticated_workers: any client can act as any worker";
  }
  absl::StatusOr<std::unique_ptr<JobStore>> store = JobStore::Open(absl::GetFlag(FLAGS_data_dir));
  if (!store.ok()) return Prefixed("--data_dir", store.status());
  JobManager::Options manager_options;
  manager_options.store = store->get();
  manager_options.registry = registry->get();
  manager_options.adopt_timeout = absl::GetFlag(FLAGS_adopt_timeout);
  manager_options.kill_grace = absl::GetFlag(FLAGS_kill_grace);
  absl::StatusOr<std::vector<std::string>> data_roots =
      NormalizeDataRoots(absl::GetFlag(FLAGS_data_roots), "--data_roots");
  if (!data_roots.ok()) return UsageError(data_roots.status());
  manager_options.data_roots = *std::move(data_roots);
  manager_options.quota = [table = &*tokens](const std::string& owner) {
    return table->Quota(owner);
  };
  RendezvousStore rendezvous;
  manager_options.rendezvous = &rendezvous;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<JobManager> jobs, JobManager::Create(manager_options));
  if (!tokens->has_users()) {
    STRATA_LOG(WARNING) << "no --tokens_file: JobService is open to every caller";
  }
  TransferRelay exports;
  WorkerServiceImpl worker_service(registry->get(), jobs.get(), &rendezvous, &*tokens, &exports);
  JobServiceImpl job_service(jobs.get(), &*tokens, &exports);
  absl::StatusOr<std::map<std::string, std::string>> enrollment =
      ReadTokenFile(absl::GetFlag(FLAGS_client_tokens_file), "--client_tokens_file");
  if (!enrollment.ok()) return UsageError(enrollment.status());
  if (absl::GetFlag(FLAGS_open_enrollment)) {
    STRATA_LOG(WARNING) << "--open_enrollment: federated clients register without a token";
  }
  RoundManager::Options round_options;
  round_options.store = store->get();
  round_options.jobs = jobs.get();
  round_options.enrollment = *std::move(enrollment);
  round_options.online_window = absl::GetFlag(FLAGS_client_online_window);
  round_options.open_enrollment = absl::GetFlag(FLAGS_open_enrollment);
  round_options.rate_per_second = absl::GetFlag(FLAGS_client_rate_limit);
  round_options.rate_burst = 2 * round_options.rate_per_second;
  RoundManager rounds(round_options);
  FederatedServiceImpl federated_service(&rounds, jobs.get(), &*tokens);

  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(TlsConfigFromFlags(), "strata-coordinator");
  if (!credentials.ok()) return UsageError(credentials.status());
  GrpcServer::Options server_options;
  server_options.listen_address = absl::GetFlag(FLAGS_listen);
  server_options.credentials = *credentials;
  server_options.services = {
      {v1::JobService::service_full_name(), &job_service},
      {v1::WorkerService::service_full_name(), &worker_service},
      {v1::FederatedService::service_full_name(), &federated_service},
  };
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<GrpcServer> server, GrpcServer::Start(server_options));
  STRATA_LOG(INFO) << "strata-coordinator listening on port " << server->port() << " ("
                   << server_options.listen_address << ")";
  if (const std::string port_file = absl::GetFlag(FLAGS_port_file); !port_file.empty()) {
    STRATA_RETURN_IF_ERROR(WritePortFile(port_file, server->port()));
  }
  std::unique_ptr<OperatorEndpoint> operator_endpoint;
  if (const std::string listen = absl::GetFlag(FLAGS_metrics_listen); !listen.empty()) {
    OperatorEndpoint::Options endpoint_options;
    endpoint_options.listen = listen;
    endpoint_options.collect = [raw = jobs.get(), &rounds](MetricsWriter* out) {
      raw->CollectMetrics(out);
      rounds.CollectMetrics(out);
    };
    DashboardSources dashboard;
    dashboard.jobs = jobs.get();
    dashboard.registry = registry->get();
    dashboard.rounds = &rounds;
    dashboard.tokens = &*tokens;
    endpoint_options.pages = DashboardPages(dashboard);
    if (absl::Status s =
            EndpointTlsFiles(absl::GetFlag(FLAGS_metrics_tls), TlsConfigFromFlags(),
                             &endpoint_options.tls_cert_file, &endpoint_options.tls_key_file);
        !s.ok()) {
      return UsageError(s);
    }
    absl::StatusOr<std::unique_ptr<OperatorEndpoint>> endpoint =
        OperatorEndpoint::Start(endpoint_options);
    if (!endpoint.ok()) return UsageError(Prefixed("--metrics_listen", endpoint.status()));
    operator_endpoint = *std::move(endpoint);
    const std::string base = absl::StrCat(operator_endpoint->tls() ? "https://" : "http://",
                                          listen.substr(0, listen.rfind(':')), ":",
                                          operator_endpoint->port());
    STRATA_LOG(INFO) << "metrics on " << base << "/metrics, dashboard on " << base << "/";
    if (const std::string file = absl::GetFlag(FLAGS_metrics_port_file); !file.empty()) {
      STRATA_RETURN_IF_ERROR(WritePortFile(file, operator_endpoint->port()));
    }
  }
  // Scheduling, lost workers and timeouts; federated rounds' deadlines.
  absl::Notification stopping;
  std::thread ticker([&] {
    for (int tick = 0; !stopping.WaitForNotificationWithTimeout(absl::Milliseconds(100)); ++tick) {
      if (tick % 5 == 0) jobs->Tick();
      rounds.Tick();
    }
  });
  const int signal_number = WaitForTerminationSignal();
  stopping.Notify();
  ticker.join();
  STRATA_LOG(INFO) << "signal " << signal_number << ": shutting down";
  server->Shutdown();
  return absl::OkStatus();
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  strata::BlockTerminationSignals();
  strata::InitMainWithoutArguments(argc, argv, strata::kUsage);
  return strata::ExitCode("strata-coordinator", strata::Run());
}
