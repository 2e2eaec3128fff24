// The rendezvous store: a get waits for keys another thread sets later, names the missing keys
// when it times out, prefixes are separate and dropped whole, and sizes are bounded. Served over
// gRPC (WorkerService.StoreSet/StoreGet), it is where Gloo ranks meet: two ranks all-reduce after
// a rendezvous through it, and a rank whose peer never comes fails with the missing key named.
#include "services/coordinator/rendezvous_store.h"

#include <grpcpp/grpcpp.h>

#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/dist/communicator.h"
#include "services/common/coordinator_store.h"
#include "services/common/grpc_server.h"
#include "services/coordinator/worker_service.h"

namespace strata {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(RendezvousStoreTest, GetWaitsForKeysSetLater) {
  RendezvousStore store;
  std::thread setter([&] {
    absl::SleepFor(absl::Milliseconds(50));
    ASSERT_TRUE(store.Set("j/1", "rank1", "addr-1").ok());
    ASSERT_TRUE(store.Set("j/1", "rank0", "addr-0").ok());
  });
  auto values = store.Get("j/1", {"rank0", "rank1"}, absl::Seconds(5));
  setter.join();
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_THAT(*values, ElementsAre("addr-0", "addr-1"));
}

TEST(RendezvousStoreTest, TimeoutNamesMissingKeysAndPrefixesAreSeparate) {
  RendezvousStore store;
  ASSERT_TRUE(store.Set("j/1", "rank0", "a").ok());
  ASSERT_TRUE(store.Set("j/2", "rank1", "b").ok());
  auto values = store.Get("j/1", {"rank0", "rank1"}, absl::Milliseconds(20));
  EXPECT_EQ(values.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(values.status().message(), HasSubstr(": rank1"));
  store.Drop("j/1");
  EXPECT_FALSE(store.Get("j/1", {"rank0"}, absl::ZeroDuration()).ok());
  EXPECT_TRUE(store.Get("j/2", {"rank1"}, absl::ZeroDuration()).ok());
}

TEST(RendezvousStoreTest, SizesAreBounded) {
  RendezvousStore store;
  EXPECT_EQ(store.Set("j/1", "big", std::string((1 << 20) + 1, 'x')).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(store.Set("j/1", std::string(513, 'k'), "v").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Set("", "k", "v").code(), absl::StatusCode::kInvalidArgument);
}

// Two Gloo ranks (threads) that find each other through the store served by WorkerService.
class ServedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GrpcServer::Options options;
    options.listen_address = "localhost:0";
    options.services = {{v1::WorkerService::service_full_name(), &service_}};
    auto server = GrpcServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("localhost:", server_->port()),
                                   grpc::InsecureChannelCredentials());
  }

  absl::StatusOr<std::unique_ptr<Communicator>> Join(CoordinatorStore& store, int rank, int size,
                                                     absl::Duration timeout) {
    GlooOptions gloo;
    gloo.rank = rank;
    gloo.size = size;
    gloo.store = &store;
    gloo.prefix = "job-7/1";
    gloo.timeout = timeout;
    return CreateGlooCommunicator(gloo);
  }

  RendezvousStore store_;
  WorkerServiceImpl service_{nullptr, nullptr, &store_};
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(ServedStoreTest, RanksMeetThroughTheCoordinatorAndAllReduce) {
  std::vector<float> sums[2];
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.emplace_back([&, r] {
      CoordinatorStore store(channel_, "job-7/1");
      auto comm = Join(store, r, 2, absl::Seconds(20));
      ASSERT_TRUE(comm.ok()) << comm.status();
      sums[r] = {1.0f + r, 10.0f * (r + 1)};
      ASSERT_TRUE((*comm)->AllReduceSum(absl::MakeSpan(sums[r])).ok());
    });
  }
  for (std::thread& t : ranks) t.join();
  EXPECT_THAT(sums[0], ElementsAre(3.0f, 30.0f));
  EXPECT_THAT(sums[1], ElementsAre(3.0f, 30.0f));
}

TEST_F(ServedStoreTest, ARankWhosePeerNeverComesFailsNamingTheKey) {
  CoordinatorStore store(channel_, "job-7/1");
  const absl::Time start = absl::Now();
  auto comm = Join(store, 0, 2, absl::Seconds(1));
  ASSERT_FALSE(comm.ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
  EXPECT_THAT(comm.status().message(), HasSubstr("rank 0 of 2 could not join"));
  EXPECT_THAT(comm.status().message(), HasSubstr("keys not set within"));
}

}  // namespace
}  // namespace strata
