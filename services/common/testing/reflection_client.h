// A blocking client for gRPC server reflection, for tests: lists a server's services and
// fetches the descriptor of the file that defines a symbol.
#ifndef STRATA_SERVICES_COMMON_TESTING_REFLECTION_CLIENT_H_
#define STRATA_SERVICES_COMMON_TESTING_REFLECTION_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpcpp/grpcpp.h"

namespace strata::testing {

class ReflectionClient {
 public:
  explicit ReflectionClient(std::shared_ptr<grpc::Channel> channel)
      : channel_(std::move(channel)) {}

  absl::StatusOr<std::vector<std::string>> ListServices();
  absl::StatusOr<google::protobuf::FileDescriptorProto> FileContainingSymbol(
      const std::string& symbol);

 private:
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace strata::testing

#endif  // STRATA_SERVICES_COMMON_TESTING_REFLECTION_CLIENT_H_
