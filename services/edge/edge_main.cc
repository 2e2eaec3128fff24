// strata-edge: the federated edge client. Registers with a coordinator's FederatedService for
// one federated job using the client's enrollment token. Depends only on gRPC and the API
// protos (no CUDA, Gloo or io_uring) so it builds for small ARM devices.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/strata/v1/federated_service.grpc.pb.h"
#include "services/common/grpc_status.h"
#include "services/common/main_util.h"
#include "services/common/tls.h"

ABSL_FLAG(std::string, coordinator, "",
          "Coordinator address host:port. Default: $STRATA_COORDINATOR, else localhost:7070.");
ABSL_FLAG(std::string, job, "", "Federated job id to join (required).");
ABSL_FLAG(std::string, client_id, "", "This client's id, as enrolled (required).");
ABSL_FLAG(std::string, token, "", "Enrollment token for --client_id. Default: $STRATA_EDGE_TOKEN.");
ABSL_FLAG(int64_t, num_samples, 0, "Local training examples (the aggregation weight).");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10), "Deadline for each call.");

namespace strata {
namespace {

constexpr char kUsage[] =
    "Joins a Strata federated zeroth-order job from an edge device.\n"
    "\n"
    "Usage: strata-edge --job=JOB_ID --client_id=ID [--token=TOKEN] [--coordinator=HOST:PORT]\n"
    "\n"
    "Only random seeds and scalar gradients cross the network (docs/federated.md).";

int Run() {
  const std::string job = absl::GetFlag(FLAGS_job);
  const std::string client_id = absl::GetFlag(FLAGS_client_id);
  std::string token = absl::GetFlag(FLAGS_token);
  if (token.empty()) {
    const char* env = std::getenv("STRATA_EDGE_TOKEN");
    if (env != nullptr) token = env;
  }
  if (job.empty() || client_id.empty()) {
    std::fprintf(stderr, "strata-edge: --job and --client_id are required (see --help)\n");
    return 2;
  }
  const std::string coordinator = ResolveCoordinatorAddress(absl::GetFlag(FLAGS_coordinator));
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials(TlsConfigFromFlags(), "strata-edge");
  if (!credentials.ok()) {
    std::fprintf(stderr, "strata-edge: %s\n", credentials.status().ToString().c_str());
    return 2;
  }
  auto stub = v1::FederatedService::NewStub(grpc::CreateChannel(coordinator, *credentials));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_timeout)));
  v1::RegisterClientRequest request;
  request.set_job_id(job);
  request.set_client_id(client_id);
  request.set_token(token);
  request.set_num_samples(absl::GetFlag(FLAGS_num_samples));
  request.set_replayed_round(-1);
  v1::RegisterClientResponse response;
  const grpc::Status status = stub->Register(&context, request, &response);
  if (!status.ok()) {
    std::fprintf(stderr, "strata-edge: coordinator %s: %s\n", coordinator.c_str(),
                 FromGrpcStatus(status, "FederatedService.Register").ToString().c_str());
    return 1;
  }
  std::printf("registered %s for job %s; latest round %lld\n", client_id.c_str(), job.c_str(),
              static_cast<long long>(response.latest_round()));
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  strata::InitMainWithoutArguments(argc, argv, strata::kUsage);
  return strata::Run();
}
