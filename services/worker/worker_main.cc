// strata-worker: the worker daemon. Detects its capacity, registers with the coordinator,
// heartbeats, and serves gRPC health + reflection for probes. Runs until SIGINT/SIGTERM; with
// ranks running, it first asks the coordinator to drain it (the ranks checkpoint and their jobs
// move to other workers) and waits up to --drain_timeout for them to exit.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "runtime/base/logging.h"
#include "runtime/base/status_macros.h"
#include "services/common/grpc_server.h"
#include "services/common/main_util.h"
#include "services/common/metrics.h"
#include "services/common/tls.h"
#include "services/jobspec/job_paths.h"
#include "services/worker/capacity.h"
#include "services/worker/rank_runner.h"
#include "services/worker/worker_agent.h"

ABSL_FLAG(std::string, coordinator, "",
          "Coordinator address host:port. Default: $STRATA_COORDINATOR, else localhost:7070.");
ABSL_FLAG(std::string, name, "", "Stable worker name. Default: the host name.");
ABSL_FLAG(std::string, listen, "[::]:7071",
          "Address for this worker's gRPC health endpoint (port 0 picks a free port).");
ABSL_FLAG(std::string, advertise_address, "",
          "host:port other ranks reach this worker on. Default: <host name>:<bound port>.");
ABSL_FLAG(std::string, port_file, "", "If set, the bound port is written here once ready.");
ABSL_FLAG(std::vector<std::string>, nvme_paths, {},
          "Comma-separated absolute directories offered for NVMe offload (created if missing).");
ABSL_FLAG(int, cores, 0, "Cores offered to ranks. 0: the cores this process may use.");
ABSL_FLAG(int64_t, memory_bytes, 0, "Host memory offered to ranks. 0: physical memory.");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9091",
          "host:port of the HTTP operator endpoint (/metrics, /healthz, /readyz); port 0 picks "
          "one; empty disables it.");
ABSL_FLAG(bool, metrics_tls, false,
          "Serve the operator endpoint over HTTPS with --tls_cert and --tls_key.");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Minutes(4),
          "On SIGINT/SIGTERM with ranks running: how long to wait for them to checkpoint and "
          "exit after asking the coordinator to drain this worker (0: stop them at once). "
          "Keep it below the pod's terminationGracePeriodSeconds.");
ABSL_FLAG(std::string, metrics_port_file, "",
          "If set, the operator endpoint's port is written here once it listens.");
ABSL_FLAG(std::string, worker_token, "",
          "Token this worker presents to the coordinator (its --worker_tokens_file). Prefer "
          "--worker_token_file or $STRATA_WORKER_TOKEN: a command line is visible to every "
          "user of the machine. Needs TLS.");
ABSL_FLAG(std::string, worker_token_file, "",
          "File whose first line is this worker's token (used when --worker_token is empty). "
          "Default: $STRATA_WORKER_TOKEN.");
ABSL_FLAG(std::string, work_dir, "strata-worker-data",
          "Directory of the users' areas: work_dir/users/<user>/ holds that user's jobs "
          "(jobs/<job_id>: run configs, logs, default checkpoints) and whatever their "
          "checkpoint.path names. Workers may share it on a shared file system, so a job "
          "restarted on another worker finds its checkpoints.");
ABSL_FLAG(std::vector<std::string>, data_roots, {},
          "Read-only directories (comma-separated, absolute) jobs may read datasets and base "
          "models from; they must not overlap --work_dir. A job reads only here and in its "
          "owner's area (docs/operations.md, security model).");
ABSL_FLAG(std::string, train_binary, "",
          "The strata-train binary ranks run. Default: the one built beside this daemon.");
ABSL_FLAG(std::vector<std::string>, labels, {},
          "Comma-separated key=value labels jobs can select on (resources.node_selector).");

namespace strata {
namespace {

// --train_binary, or strata-train next to this binary in the Bazel output tree (runfiles or
// bazel-bin/runtime/train).
absl::StatusOr<std::string> TrainBinary() {
  if (!absl::GetFlag(FLAGS_train_binary).empty()) {
    if (access(absl::GetFlag(FLAGS_train_binary).c_str(), X_OK) != 0) {
      return absl::NotFoundError(absl::GetFlag(FLAGS_train_binary) + " is not executable");
    }
    return absl::GetFlag(FLAGS_train_binary);
  }
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return absl::InternalError("cannot read /proc/self/exe");
  const std::string exe(self, n);
  const std::string dir = exe.substr(0, exe.rfind('/'));
  for (const std::string& candidate : {exe + ".runfiles/strata/services/trainer/strata-train",
                                       dir + "/../../services/trainer/strata-train"}) {
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::NotFoundError("strata-train not found beside " + exe +
                             "; build //services/trainer:strata-train or pass "
                             "--train_binary");
}

constexpr char kUsage[] =
    "Runs Strata job ranks on this machine for a coordinator.\n"
    "\n"
    "Usage: strata-worker [--coordinator=HOST:PORT] [--name=NAME] [--nvme_paths=DIR,...]";

std::string HostName() {
  char name[256] = {0};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

std::string CoordinatorAddress() {
  return ResolveCoordinatorAddress(absl::GetFlag(FLAGS_coordinator));
}

// With ranks running: asks the coordinator to move them elsewhere (they checkpoint first) and
// waits up to --drain_timeout for them to exit. The agent keeps heartbeating and taking the
// stop orders meanwhile.
void DrainBeforeExit(v1::WorkerService::Stub* stub, const std::string& name,
                     const RankRunner& runner) {
  const absl::Duration timeout = absl::GetFlag(FLAGS_drain_timeout);
  if (runner.Running().empty() || timeout <= absl::ZeroDuration()) return;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::DrainWorkerRequest request;
  request.set_name(name);
  request.set_leaving(true);
  v1::DrainWorkerResponse response;
  if (grpc::Status s = stub->Drain(&context, request, &response); !s.ok()) {
    STRATA_LOG(WARNING) << "drain refused (" << s.error_message() << "): stopping the ranks";
    return;
  }
  STRATA_LOG(INFO) << "draining: " << response.job_ids_size()
                   << " job(s) checkpoint and move to other workers";
  const absl::Time deadline = absl::Now() + timeout;
  while (!runner.Running().empty() && absl::Now() < deadline) absl::SleepFor(absl::Seconds(1));
  if (!runner.Running().empty()) {
    STRATA_LOG(WARNING) << "--drain_timeout passed: stopping the ranks still running";
  }
}

absl::Status Run() {
  std::map<std::string, std::string> labels;
  for (const std::string& label : absl::GetFlag(FLAGS_labels)) {
    std::pair<std::string, std::string> kv = absl::StrSplit(label, absl::MaxSplits('=', 1));
    if (kv.first.empty() || label.find('=') == std::string::npos) {
      return UsageError(absl::InvalidArgumentError(
          absl::StrCat("--labels: expected key=value, got \"", label, "\"")));
    }
    labels[kv.first] = kv.second;
  }
  CapacityOptions capacity_options;
  capacity_options.nvme_paths = absl::GetFlag(FLAGS_nvme_paths);
  capacity_options.cores = absl::GetFlag(FLAGS_cores);
  capacity_options.memory_bytes = absl::GetFlag(FLAGS_memory_bytes);
  absl::StatusOr<v1::WorkerCapacity> capacity = DetectCapacity(capacity_options);
  if (!capacity.ok()) return Prefixed("capacity", capacity.status());

  const TlsConfig tls = TlsConfigFromFlags();
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server_credentials =
      MakeServerCredentials(tls, "strata-worker");
  if (!server_credentials.ok()) return UsageError(Prefixed("TLS", server_credentials.status()));
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> channel_credentials =
      MakeChannelCredentials(tls, "strata-worker");
  if (!channel_credentials.ok()) {
    return UsageError(Prefixed("TLS", channel_credentials.status()));
  }
  absl::StatusOr<std::string> read_token =
      ReadSecret(absl::GetFlag(FLAGS_worker_token), absl::GetFlag(FLAGS_worker_token_file),
                 "STRATA_WORKER_TOKEN", "--worker_token_file");
  if (!read_token.ok()) return UsageError(read_token.status());
  const std::string worker_token = *read_token;
  if (!worker_token.empty()) {
    if (tls.insecure) {  // A worker token travels only over TLS, whatever the flags say.
      return UsageError(absl::InvalidArgumentError(
          "--worker_token_file: a worker token needs TLS, not --insecure"));
    }
    // Every call to the coordinator carries "authorization: Bearer TOKEN".
    *channel_credentials = grpc::CompositeChannelCredentials(
        *channel_credentials, grpc::AccessTokenCredentials(worker_token));
  }
  GrpcServer::Options server_options;
  server_options.listen_address = absl::GetFlag(FLAGS_listen);
  server_options.credentials = *server_credentials;
  absl::StatusOr<std::unique_ptr<GrpcServer>> server = GrpcServer::Start(server_options);
  if (!server.ok()) return Prefixed("--listen", server.status());

  WorkerAgent::Options agent_options;
  // A StartRank carries the job's spec (bounded: spec_limits.h) and, for a restarted ZO
  // attempt, its whole step log: room for millions of steps.
  grpc::ChannelArguments channel_arguments;
  channel_arguments.SetMaxReceiveMessageSize(512 << 20);
  agent_options.channel =
      grpc::CreateCustomChannel(CoordinatorAddress(), *channel_credentials, channel_arguments);
  agent_options.name = absl::GetFlag(FLAGS_name).empty() ? HostName() : absl::GetFlag(FLAGS_name);
  agent_options.address = absl::GetFlag(FLAGS_advertise_address).empty()
                              ? absl::StrCat(HostName(), ":", (*server)->port())
                              : absl::GetFlag(FLAGS_advertise_address);
  agent_options.capacity = *capacity;
  agent_options.labels = labels;
  STRATA_LOG(INFO) << "strata-worker " << agent_options.name << ": " << capacity->cores()
                   << " cores, " << capacity->memory_bytes() / (1 << 20) << " MiB, "
                   << capacity->gpus_size() << " GPUs, " << capacity->nvme_paths_size()
                   << " NVMe paths, io_uring " << (capacity->io_uring() ? "yes" : "no")
                   << "; coordinator " << CoordinatorAddress();
  absl::StatusOr<std::string> train_binary = TrainBinary();
  if (!train_binary.ok()) return UsageError(Prefixed("--train_binary", train_binary.status()));
  std::shared_ptr<grpc::Channel> channel = agent_options.channel;
  std::unique_ptr<v1::WorkerService::Stub> stub = v1::WorkerService::NewStub(channel);
  RankRunner::Options runner_options;
  runner_options.train_binary = *train_binary;
  runner_options.work_dir = absl::GetFlag(FLAGS_work_dir);
  absl::StatusOr<std::vector<std::string>> roots_as_given =
      NormalizeDataRoots(absl::GetFlag(FLAGS_data_roots), "--data_roots");
  if (!roots_as_given.ok()) return UsageError(roots_as_given.status());
  runner_options.data_roots_as_given = *roots_as_given;
  runner_options.data_roots = absl::GetFlag(FLAGS_data_roots);
  if (absl::Status s = ResolveWorkerDirs(&runner_options.work_dir, &runner_options.data_roots);
      !s.ok()) {
    return UsageError(s);
  }
  runner_options.nvme_paths = absl::GetFlag(FLAGS_nvme_paths);
  runner_options.coordinator = CoordinatorAddress();
  runner_options.tls_ca = tls.ca_file;
  runner_options.insecure = tls.insecure;
  runner_options.worker_token = worker_token;
  // Ranks listen for their peers on the host part of the advertised address.
  runner_options.host = agent_options.address.substr(0, agent_options.address.rfind(':'));
  if (runner_options.host == "localhost") runner_options.host = "127.0.0.1";
  auto runner = std::make_unique<RankRunner>(runner_options, stub.get());
  agent_options.running = [raw = runner.get()] { return raw->Running(); };
  absl::StatusOr<std::unique_ptr<WorkerAgent>> agent = WorkerAgent::Start(agent_options);
  if (!agent.ok()) return Prefixed("agent", agent.status());
  runner->FollowAssignments([raw = agent->get()] { return raw->worker_id(); });
  std::unique_ptr<OperatorEndpoint> operator_endpoint;
  if (const std::string listen = absl::GetFlag(FLAGS_metrics_listen); !listen.empty()) {
    OperatorEndpoint::Options endpoint_options;
    endpoint_options.listen = listen;
    endpoint_options.collect = [raw = runner.get(),
                                nvme_paths = absl::GetFlag(FLAGS_nvme_paths)](MetricsWriter* out) {
      raw->CollectMetrics(out);
      CollectNvmeMetrics(nvme_paths, out);
    };
    endpoint_options.ready = [raw = agent->get()] { return !raw->worker_id().empty(); };
    if (absl::Status s =
            EndpointTlsFiles(absl::GetFlag(FLAGS_metrics_tls), tls,
                             &endpoint_options.tls_cert_file, &endpoint_options.tls_key_file);
        !s.ok()) {
      return UsageError(s);
    }
    absl::StatusOr<std::unique_ptr<OperatorEndpoint>> endpoint =
        OperatorEndpoint::Start(endpoint_options);
    if (!endpoint.ok()) return Prefixed("--metrics_listen", endpoint.status());
    operator_endpoint = *std::move(endpoint);
    STRATA_LOG(INFO) << "metrics on port " << operator_endpoint->port();
    if (const std::string file = absl::GetFlag(FLAGS_metrics_port_file); !file.empty()) {
      STRATA_RETURN_IF_ERROR(
          Prefixed("--metrics_port_file", WritePortFile(file, operator_endpoint->port())));
    }
  }

  if (const std::string port_file = absl::GetFlag(FLAGS_port_file); !port_file.empty()) {
    STRATA_RETURN_IF_ERROR(Prefixed("--port_file", WritePortFile(port_file, (*server)->port())));
  }
  const int signal_number = WaitForTerminationSignal();
  STRATA_LOG(INFO) << "signal " << signal_number << ": shutting down";
  DrainBeforeExit(stub.get(), agent_options.name, *runner);
  (*agent)->Stop();
  operator_endpoint.reset();
  runner.reset();  // Kills the ranks still running.
  (*server)->Shutdown();
  return absl::OkStatus();
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  strata::BlockTerminationSignals();
  strata::InitMainWithoutArguments(argc, argv, strata::kUsage);
  return strata::ExitCode("strata-worker", strata::Run());
}
