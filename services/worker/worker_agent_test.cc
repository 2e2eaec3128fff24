// A worker agent against a real coordinator WorkerService over loopback: it registers, keeps
// heartbeating, survives a coordinator that starts late, and registers again with a coordinator
// that restarted and forgot it.
#include "services/worker/worker_agent.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "services/common/grpc_server.h"
#include "services/coordinator/worker_registry.h"
#include "services/coordinator/worker_service.h"

namespace strata {
namespace {

// A coordinator's worker-facing half: a registry behind a real gRPC server.
class Coordinator {
 public:
  explicit Coordinator(int port) {
    WorkerRegistry::Options options;
    options.heartbeat_interval = absl::Milliseconds(50);
    options.heartbeat_timeout = absl::Milliseconds(500);
    registry_ = *WorkerRegistry::Create(options);
    service_ = std::make_unique<WorkerServiceImpl>(registry_.get(), nullptr);
    GrpcServer::Options server_options;
    server_options.listen_address = "localhost:" + std::to_string(port);
    server_options.services = {{v1::WorkerService::service_full_name(), service_.get()}};
    server_ = *GrpcServer::Start(server_options);
  }
  int port() const { return server_->port(); }
  WorkerRegistry& registry() { return *registry_; }

 private:
  std::unique_ptr<WorkerRegistry> registry_;
  std::unique_ptr<WorkerServiceImpl> service_;
  std::unique_ptr<GrpcServer> server_;
};

WorkerAgent::Options AgentOptions(int port) {
  WorkerAgent::Options options;
  options.channel =
      grpc::CreateChannel("localhost:" + std::to_string(port), grpc::InsecureChannelCredentials());
  options.name = "agent-test";
  options.address = "localhost:1";
  options.capacity.set_cores(2);
  options.capacity.set_memory_bytes(int64_t{1} << 30);
  options.min_backoff = absl::Milliseconds(20);
  options.max_backoff = absl::Milliseconds(200);
  options.rpc_timeout = absl::Seconds(2);
  return options;
}

// Polls `predicate` until true or `timeout`.
template <typename Predicate>
bool Eventually(Predicate predicate, absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (predicate()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return predicate();
}

TEST(WorkerAgentTest, RegistersAndStaysAlivePastTheTimeout) {
  Coordinator coordinator(0);
  auto agent = WorkerAgent::Start(AgentOptions(coordinator.port()));
  ASSERT_TRUE(agent.ok()) << agent.status();
  const std::string id = (*agent)->WaitUntilRegistered(absl::Seconds(10));
  ASSERT_FALSE(id.empty());
  // Well past the 500 ms timeout: heartbeats keep the worker alive.
  absl::SleepFor(absl::Seconds(1));
  v1::ListWorkersResponse live = coordinator.registry().List(false);
  ASSERT_EQ(live.workers_size(), 1);
  EXPECT_EQ(live.workers(0).worker_id(), id);
  EXPECT_EQ(live.workers(0).name(), "agent-test");
  EXPECT_EQ((*agent)->registrations(), 1);

  (*agent)->Stop();
  EXPECT_TRUE(Eventually([&] { return coordinator.registry().List(false).workers_size() == 0; }));
  EXPECT_EQ(coordinator.registry().List(true).workers_size(), 1);
}

TEST(WorkerAgentTest, WaitsForACoordinatorThatStartsLate) {
  int port;
  {
    Coordinator probe(0);  // Find a free port, then free it.
    port = probe.port();
  }
  auto agent = WorkerAgent::Start(AgentOptions(port));
  ASSERT_TRUE(agent.ok());
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_TRUE((*agent)->WaitUntilRegistered(absl::ZeroDuration()).empty());
  Coordinator coordinator(port);
  EXPECT_FALSE((*agent)->WaitUntilRegistered(absl::Seconds(15)).empty());
  EXPECT_EQ(coordinator.registry().List(false).workers_size(), 1);
}

TEST(WorkerAgentTest, RegistersAgainWithARestartedCoordinator) {
  auto first = std::make_unique<Coordinator>(0);
  const int port = first->port();
  auto agent = WorkerAgent::Start(AgentOptions(port));
  ASSERT_TRUE(agent.ok());
  ASSERT_FALSE((*agent)->WaitUntilRegistered(absl::Seconds(10)).empty());
  first.reset();  // The coordinator goes away with its in-memory registry.
  Coordinator second(port);
  ASSERT_TRUE(Eventually([&] { return second.registry().List(false).workers_size() == 1; }));
  // The registry holds the worker before the agent has read the reply that counts it.
  EXPECT_TRUE(Eventually([&] { return (*agent)->registrations() == 2; }))
      << (*agent)->registrations() << " registrations";
}

TEST(WorkerAgentTest, RejectsBadOptions) {
  WorkerAgent::Options options = AgentOptions(1);
  options.name = "";
  EXPECT_EQ(WorkerAgent::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
  options = AgentOptions(1);
  options.channel = nullptr;
  EXPECT_EQ(WorkerAgent::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata
