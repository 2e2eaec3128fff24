#include "services/coordinator/worker_registry.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

class WorkerRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WorkerRegistry::Options options;
    options.heartbeat_interval = absl::Seconds(1);
    options.heartbeat_timeout = absl::Seconds(5);
    options.clock = [this] { return now_; };
    auto registry = WorkerRegistry::Create(options);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
  }

  static v1::RegisterWorkerRequest Request(const std::string& name) {
    v1::RegisterWorkerRequest request;
    request.set_name(name);
    request.set_address(name + ":7071");
    request.mutable_capacity()->set_cores(8);
    request.mutable_capacity()->set_memory_bytes(int64_t{32} << 30);
    v1::NvmePath* nvme = request.mutable_capacity()->add_nvme_paths();
    nvme->set_path("/nvme0");
    nvme->set_capacity_bytes(int64_t{1} << 40);
    return request;
  }

  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
  std::unique_ptr<WorkerRegistry> registry_;
};

TEST_F(WorkerRegistryTest, RegisterAssignsIdsAndReRegisterKeepsThem) {
  auto a = registry_->Register(Request("host-a"));
  auto b = registry_->Register(Request("host-b"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->worker_id(), b->worker_id());
  EXPECT_EQ(a->heartbeat_interval().seconds(), 1);
  EXPECT_EQ(a->heartbeat_timeout().seconds(), 5);
  auto again = registry_->Register(Request("host-a"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->worker_id(), a->worker_id());
  v1::ListWorkersResponse list = registry_->List(false);
  ASSERT_EQ(list.workers_size(), 2);
  EXPECT_EQ(list.workers(0).capacity().cores(), 8);
  EXPECT_EQ(list.workers(0).capacity().nvme_paths(0).path(), "/nvme0");
}

TEST_F(WorkerRegistryTest, InvalidCapacityIsRejectedNamingTheField) {
  v1::RegisterWorkerRequest request = Request("host-a");
  request.mutable_capacity()->set_cores(0);
  EXPECT_THAT(registry_->Register(request).status().message(), HasSubstr("capacity.cores"));
  request = Request("host-a");
  request.mutable_capacity()->mutable_nvme_paths(0)->set_path("relative/dir");
  EXPECT_THAT(registry_->Register(request).status().message(),
              HasSubstr("capacity.nvme_paths[0].path"));
  EXPECT_EQ(registry_->Register(v1::RegisterWorkerRequest()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->List(true).workers_size(), 0);
}

TEST_F(WorkerRegistryTest, SilentWorkerIsLostAndHeartbeatRevivesIt) {
  auto a = registry_->Register(Request("host-a"));
  auto b = registry_->Register(Request("host-b"));
  ASSERT_TRUE(a.ok() && b.ok());
  now_ += absl::Seconds(4);
  v1::HeartbeatRequest beat;
  beat.set_worker_id(b->worker_id());
  ASSERT_TRUE(registry_->Heartbeat(beat).ok());
  now_ += absl::Seconds(2);  // a: 6 s silent (> 5 s timeout); b: 2 s.
  v1::ListWorkersResponse live = registry_->List(false);
  ASSERT_EQ(live.workers_size(), 1);
  EXPECT_EQ(live.workers(0).worker_id(), b->worker_id());
  v1::ListWorkersResponse all = registry_->List(true);
  ASSERT_EQ(all.workers_size(), 2);
  EXPECT_TRUE(all.workers(0).lost());

  beat.set_worker_id(a->worker_id());
  auto response = registry_->Heartbeat(beat);
  ASSERT_TRUE(response.ok());
  EXPECT_FALSE(response->reregister());
  EXPECT_EQ(registry_->List(false).workers_size(), 2);
}

TEST_F(WorkerRegistryTest, UnknownWorkerIsAskedToReregister) {
  v1::HeartbeatRequest beat;
  beat.set_worker_id("w999");
  auto response = registry_->Heartbeat(beat);
  ASSERT_TRUE(response.ok());
  EXPECT_TRUE(response->reregister());
}

TEST(WorkerRegistryCreateTest, TimeoutMustExceedInterval) {
  WorkerRegistry::Options options;
  options.heartbeat_interval = absl::Seconds(5);
  options.heartbeat_timeout = absl::Seconds(5);
  EXPECT_EQ(WorkerRegistry::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata
