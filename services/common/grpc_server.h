// Starts a gRPC server the way every Strata daemon needs it: bound to an address (port 0 picks
// a free port, reported back), with the standard health service (every registered service is
// marked SERVING) and server reflection enabled. Bind failures are returned, never ignored.
#ifndef STRATA_SERVICES_COMMON_GRPC_SERVER_H_
#define STRATA_SERVICES_COMMON_GRPC_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace strata {

class GrpcServer {
 public:
  struct Options {
    // "host:port"; "localhost:0" or "[::]:0" binds a free port.
    std::string listen_address = "[::]:0";
    // Services to serve, by full name (e.g. strata::v1::JobService::service_full_name()); the
    // health service reports each by that name. Not owned; they must outlive the server.
    struct NamedService {
      std::string name;
      grpc::Service* service;
    };
    std::vector<NamedService> services;
    // Insecure when null.
    std::shared_ptr<grpc::ServerCredentials> credentials;
    // Largest request accepted, in bytes.
    int max_receive_message_bytes = 64 << 20;
  };

  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(Options options);

  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // The port actually bound.
  int port() const { return port_; }

  // Marks the server NOT_SERVING (so probes fail over), then stops accepting calls, cancels
  // calls still running after `grace`, and returns when all have finished. Idempotent; call it
  // from one thread.
  void Shutdown(absl::Duration grace = absl::Seconds(5));

 private:
  GrpcServer(std::unique_ptr<grpc::Server> server, int port)
      : server_(std::move(server)), port_(port) {}

  std::unique_ptr<grpc::Server> server_;
  int port_;
};

}  // namespace strata

#endif  // STRATA_SERVICES_COMMON_GRPC_SERVER_H_
