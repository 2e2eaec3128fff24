// The rendezvous store: a get waits for keys another thread sets later, names the missing keys
// when it times out, prefixes are separate and dropped whole, and sizes are bounded.
#include "services/coordinator/rendezvous_store.h"

#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

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

}  // namespace
}  // namespace strata
