// strata-coordinator: serves the Strata v1 API (JobService, WorkerService, FederatedService)
// with gRPC health checking and reflection. Runs until SIGINT/SIGTERM, then drains calls.
#include <cstdio>
#include <memory>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "proto/strata/v1/federated_service.grpc.pb.h"
#include "proto/strata/v1/job_service.grpc.pb.h"
#include "runtime/base/logging.h"
#include "services/common/grpc_server.h"
#include "services/common/main_util.h"
#include "services/coordinator/worker_registry.h"
#include "services/coordinator/worker_service.h"

ABSL_FLAG(std::string, listen, "[::]:7070",
          "Address the gRPC API listens on (host:port; port 0 picks a free port).");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound port is written to this file once the server is ready.");
ABSL_FLAG(absl::Duration, heartbeat_interval, absl::Seconds(2),
          "How often workers are told to heartbeat.");
ABSL_FLAG(absl::Duration, heartbeat_timeout, absl::Seconds(10),
          "A worker silent for longer than this is declared lost.");

namespace strata {
namespace {

constexpr char kUsage[] =
    "Schedules Strata training jobs across worker daemons.\n"
    "\n"
    "Usage: strata-coordinator [--listen=HOST:PORT] [--port_file=PATH] [flags]\n"
    "\n"
    "Serves strata.v1.JobService, WorkerService and FederatedService, plus\n"
    "grpc.health.v1.Health and server reflection, on --listen.";

int Run() {
  WorkerRegistry::Options registry_options;
  registry_options.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat_interval);
  registry_options.heartbeat_timeout = absl::GetFlag(FLAGS_heartbeat_timeout);
  absl::StatusOr<std::unique_ptr<WorkerRegistry>> registry =
      WorkerRegistry::Create(registry_options);
  if (!registry.ok()) {
    std::fprintf(stderr, "strata-coordinator: %s\n", registry.status().ToString().c_str());
    return 2;
  }
  WorkerServiceImpl worker_service(registry->get());
  // Job scheduling and federated rounds are served by later releases of the coordinator;
  // until then their RPCs answer UNIMPLEMENTED, but the API is listed by reflection.
  v1::JobService::Service job_service;
  v1::FederatedService::Service federated_service;

  GrpcServer::Options server_options;
  server_options.listen_address = absl::GetFlag(FLAGS_listen);
  server_options.services = {
      {v1::JobService::service_full_name(), &job_service},
      {v1::WorkerService::service_full_name(), &worker_service},
      {v1::FederatedService::service_full_name(), &federated_service},
  };
  absl::StatusOr<std::unique_ptr<GrpcServer>> server = GrpcServer::Start(server_options);
  if (!server.ok()) {
    std::fprintf(stderr, "strata-coordinator: %s\n", server.status().ToString().c_str());
    return 1;
  }
  STRATA_LOG(INFO) << "strata-coordinator listening on port " << (*server)->port() << " ("
                   << server_options.listen_address << ")";
  if (const std::string port_file = absl::GetFlag(FLAGS_port_file); !port_file.empty()) {
    if (absl::Status status = WritePortFile(port_file, (*server)->port()); !status.ok()) {
      std::fprintf(stderr, "strata-coordinator: --port_file: %s\n", status.ToString().c_str());
      return 1;
    }
  }
  const int signal_number = WaitForTerminationSignal();
  STRATA_LOG(INFO) << "signal " << signal_number << ": shutting down";
  (*server)->Shutdown();
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  strata::BlockTerminationSignals();
  strata::InitMainWithoutArguments(argc, argv, strata::kUsage);
  return strata::Run();
}
