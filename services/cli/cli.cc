// See cli.h.
#include "services/cli/cli.h"

#include <memory>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "proto/strata/v1/worker_service.grpc.pb.h"
#include "services/common/grpc_status.h"
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
    "  version                   Print the client version.\n"
    "\n"
    "The coordinator address comes from --coordinator, else STRATA_COORDINATOR, else\n"
    "localhost:7070. --output=json prints the API's JSON instead of a table.";

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
        channel_(grpc::CreateChannel(options.coordinator, grpc::InsecureChannelCredentials())) {}

  int Health() {
    auto stub = grpc::health::v1::Health::NewStub(channel_);
    grpc::ClientContext context;
    SetDeadline(&context);
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

  int NodeList() {
    auto stub = v1::WorkerService::NewStub(channel_);
    grpc::ClientContext context;
    SetDeadline(&context);
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
                      worker.lost() ? "lost" : "ready", Ago(worker.last_heartbeat())});
    }
    PrintTable(rows, out_);
    return kCliOk;
  }

 private:
  void SetDeadline(grpc::ClientContext* context) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
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
  if (args.empty()) {
    err << kCliUsageText << "\n";
  } else {
    err << "strata: unknown command \"" << absl::StrJoin(args, " ")
        << "\"; run `strata --help` for the list of commands\n";
  }
  return kCliUsage;
}

}  // namespace strata
