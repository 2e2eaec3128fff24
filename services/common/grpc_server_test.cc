// Starts a real server on localhost:0 and talks to it over TCP: health checking answers per
// service, reflection lists the Strata API and serves its descriptors, bind errors surface.
#include "services/common/grpc_server.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.pb.h"
#include "gtest/gtest.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "proto/strata/v1/job_service.grpc.pb.h"
#include "proto/strata/v1/worker_service.grpc.pb.h"
#include "services/common/testing/reflection_client.h"

namespace strata {
namespace {

using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::Contains;
using ::testing::HasSubstr;

class GrpcServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GrpcServer::Options options;
    options.listen_address = "localhost:0";
    options.services = {{v1::JobService::service_full_name(), &job_service_},
                        {v1::WorkerService::service_full_name(), &worker_service_}};
    absl::StatusOr<std::unique_ptr<GrpcServer>> server = GrpcServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
    channel_ = grpc::CreateChannel("localhost:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
  }

  HealthCheckResponse::ServingStatus Check(const std::string& service, grpc::StatusCode* code) {
    auto stub = grpc::health::v1::Health::NewStub(channel_);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    *code = stub->Check(&context, request, &response).error_code();
    return response.status();
  }

  v1::JobService::Service job_service_;
  v1::WorkerService::Service worker_service_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(GrpcServerTest, HealthReportsServerAndEachServiceServing) {
  grpc::StatusCode code;
  EXPECT_EQ(Check("", &code), HealthCheckResponse::SERVING);
  EXPECT_EQ(code, grpc::StatusCode::OK);
  EXPECT_EQ(Check("strata.v1.JobService", &code), HealthCheckResponse::SERVING);
  EXPECT_EQ(code, grpc::StatusCode::OK);
  EXPECT_EQ(Check("strata.v1.WorkerService", &code), HealthCheckResponse::SERVING);
  Check("strata.v1.NoSuchService", &code);
  EXPECT_EQ(code, grpc::StatusCode::NOT_FOUND);
}

TEST_F(GrpcServerTest, ShutdownStopsServing) {
  server_->Shutdown(absl::ZeroDuration());
  grpc::StatusCode code;
  Check("", &code);
  EXPECT_EQ(code, grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GrpcServerTest, ReflectionListsServicesAndServesDescriptors) {
  testing::ReflectionClient reflection(channel_);
  absl::StatusOr<std::vector<std::string>> names = reflection.ListServices();
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_THAT(*names, Contains("strata.v1.JobService"));
  EXPECT_THAT(*names, Contains("strata.v1.WorkerService"));
  EXPECT_THAT(*names, Contains("grpc.health.v1.Health"));

  absl::StatusOr<google::protobuf::FileDescriptorProto> file =
      reflection.FileContainingSymbol("strata.v1.JobService");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->name(), "proto/strata/v1/job_service.proto");
  ASSERT_EQ(file->service_size(), 1);
  std::vector<std::string> methods;
  for (const auto& method : file->service(0).method()) methods.push_back(method.name());
  EXPECT_THAT(methods, Contains("Submit"));
  EXPECT_THAT(methods, Contains("Kill"));
  EXPECT_EQ(reflection.FileContainingSymbol("strata.v1.Nope").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(GrpcServerTest, UnimplementedCallsSayUnimplemented) {
  auto stub = v1::JobService::NewStub(channel_);
  grpc::ClientContext context;
  v1::GetJobRequest request;
  v1::Job job;
  EXPECT_EQ(stub->Get(&context, request, &job).error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST(GrpcServerStartTest, PortInUseIsAnError) {
  GrpcServer::Options options;
  options.listen_address = "localhost:0";
  absl::StatusOr<std::unique_ptr<GrpcServer>> first = GrpcServer::Start(options);
  ASSERT_TRUE(first.ok()) << first.status();
  options.listen_address = "localhost:" + std::to_string((*first)->port());
  absl::StatusOr<std::unique_ptr<GrpcServer>> second = GrpcServer::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr(options.listen_address));
}

TEST(GrpcServerStartTest, MalformedAddressIsAnError) {
  GrpcServer::Options options;
  options.listen_address = "not an address:xyz";
  EXPECT_FALSE(GrpcServer::Start(options).ok());
}

}  // namespace
}  // namespace strata
