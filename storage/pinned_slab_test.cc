#include "storage/pinned_slab.h"

#include <sys/resource.h>

#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/cuda/cuda_runtime.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

TEST(PinnedSlabTest, SlotsAreAlignedLockedAndAccounted) {
  auto engine = CreateIoEngine(IoEngineOptions());
  ASSERT_TRUE(engine.ok());
  PinnedSlab::Options options;
  options.slot_bytes = (1 << 20) + 1;  // Rounded up to 4096.
  options.slots = 3;
  options.engine = engine->get();
  const int64_t limit = MemlockLimitBytes();
  if (limit >= 0 && limit < (8 << 20)) {
    options.lock = false;  // Still exercise carving and registration below the limit.
  }
  auto slab = PinnedSlab::Create(options);
  ASSERT_TRUE(slab.ok()) << slab.status();
  EXPECT_EQ((*slab)->slot_bytes() % 4096, 0);
  EXPECT_GE((*slab)->slot_bytes(), (1 << 20) + 1);
  EXPECT_TRUE((*slab)->registered());
  if (options.lock) {
    EXPECT_GE((*slab)->pinned_bytes(), 3 * (*slab)->slot_bytes());
  }
  int a = *(*slab)->Acquire(), b = *(*slab)->Acquire(), c = *(*slab)->Acquire();
  EXPECT_EQ((*slab)->in_use_bytes(), 3 * (*slab)->slot_bytes());
  EXPECT_EQ((*slab)->Acquire().status().code(), absl::StatusCode::kUnavailable);
  for (int s : {a, b, c}) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>((*slab)->slot(s)) % 4096, 0u);
    std::memset((*slab)->slot(s), s, (*slab)->slot_bytes());
  }
  (*slab)->Release(b);
  EXPECT_EQ(*(*slab)->Acquire(), b);
}

TEST(PinnedSlabTest, RegistersWithCudaWhereAGpuExists) {
  if (!CudaBuilt()) GTEST_SKIP() << "built without --config=cuda";
  absl::StatusOr<int> devices = CudaDeviceCount();
  if (!devices.ok() || *devices == 0) GTEST_SKIP() << "no usable GPU";
  PinnedSlab::Options options;
  options.slot_bytes = 1 << 20;
  options.slots = 2;
  options.lock = MemlockLimitBytes() < 0 || MemlockLimitBytes() >= (4 << 20);
  auto slab = PinnedSlab::Create(options);
  ASSERT_TRUE(slab.ok()) << slab.status();
  EXPECT_TRUE((*slab)->cuda_registered());
}

TEST(PinnedSlabTest, MemlockLimitTooSmallIsAClearError) {
  rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_MEMLOCK, &saved), 0);
  rlimit small = saved;
  small.rlim_cur = 64 << 10;
  if (setrlimit(RLIMIT_MEMLOCK, &small) != 0) GTEST_SKIP() << "cannot lower RLIMIT_MEMLOCK";
  PinnedSlab::Options options;
  options.slot_bytes = 4 << 20;
  options.slots = 2;
  absl::Status status = PinnedSlab::Create(options).status();
  setrlimit(RLIMIT_MEMLOCK, &saved);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("RLIMIT_MEMLOCK"));
  EXPECT_THAT(status.message(), HasSubstr("65536"));
}

}  // namespace
}  // namespace strata
