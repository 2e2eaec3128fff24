// See reflection_client.h. Calls the bidirectional ServerReflectionInfo method by its
// canonical path with the wire-identical messages from reflection_wire.proto.
#include "services/common/testing/reflection_client.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/impl/codegen/rpc_method.h"
#include "grpcpp/impl/codegen/sync_stream.h"
#include "services/common/testing/reflection_wire.pb.h"

namespace strata::testing {
namespace {

constexpr char kMethod[] = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

absl::StatusOr<ServerReflectionResponse> Ask(grpc::Channel* channel,
                                             const ServerReflectionRequest& request) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  const grpc::internal::RpcMethod method(kMethod, grpc::internal::RpcMethod::BIDI_STREAMING);
  std::unique_ptr<grpc::ClientReaderWriter<ServerReflectionRequest, ServerReflectionResponse>>
      stream(grpc::internal::ClientReaderWriterFactory<
             ServerReflectionRequest, ServerReflectionResponse>::Create(channel, method, &context));
  ServerReflectionResponse response;
  const bool wrote = stream->Write(request);
  const bool read = wrote && stream->Read(&response);
  stream->WritesDone();
  const grpc::Status status = stream->Finish();
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("ServerReflectionInfo: ", status.error_message()));
  }
  if (!read) return absl::UnavailableError("ServerReflectionInfo: no response");
  if (response.has_error_response()) {
    return absl::Status(static_cast<absl::StatusCode>(response.error_response().error_code()),
                        response.error_response().error_message());
  }
  return response;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ReflectionClient::ListServices() {
  ServerReflectionRequest request;
  request.set_list_services("*");
  absl::StatusOr<ServerReflectionResponse> response = Ask(channel_.get(), request);
  if (!response.ok()) return response.status();
  std::vector<std::string> names;
  for (const ServiceResponse& service : response->list_services_response().service()) {
    names.push_back(service.name());
  }
  return names;
}

absl::StatusOr<google::protobuf::FileDescriptorProto> ReflectionClient::FileContainingSymbol(
    const std::string& symbol) {
  ServerReflectionRequest request;
  request.set_file_containing_symbol(symbol);
  absl::StatusOr<ServerReflectionResponse> response = Ask(channel_.get(), request);
  if (!response.ok()) return response.status();
  const FileDescriptorResponse& files = response->file_descriptor_response();
  if (files.file_descriptor_proto_size() == 0) {
    return absl::NotFoundError(absl::StrCat("no descriptor for ", symbol));
  }
  google::protobuf::FileDescriptorProto file;
  if (!file.ParseFromString(files.file_descriptor_proto(0))) {
    return absl::DataLossError(absl::StrCat("malformed descriptor for ", symbol));
  }
  return file;
}

}  // namespace strata::testing
