// Runs the CUDA vector add on a real GPU and compares it bit for bit with the CPU reference.
// Skips (never passes silently) when the build has no CUDA or the machine has no usable GPU.
#include "runtime/cuda/cuda_runtime.h"

#include <cstdint>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

void vector_add_forward_cpu(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

TEST(CudaRuntimeTest, ReportsWhyNoDeviceIsUsable) {
  absl::StatusOr<int> count = CudaDeviceCount();
  if (!CudaBuilt()) {
    EXPECT_EQ(count.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(count.status().message(), HasSubstr("--config=cuda"));
  } else if (!count.ok()) {
    EXPECT_EQ(count.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(count.status().message(), HasSubstr("cudaGetDeviceCount"));
  } else {
    EXPECT_GE(*count, 0);
  }
}

TEST(CudaRuntimeTest, DeviceListMatchesCount) {
  absl::StatusOr<int> count = CudaDeviceCount();
  const std::vector<CudaDeviceInfo> devices = CudaDevices();
  if (!count.ok()) {
    EXPECT_TRUE(devices.empty());
    GTEST_SKIP() << "no usable GPU: " << count.status();
  }
  ASSERT_EQ(static_cast<int>(devices.size()), *count);
  for (const CudaDeviceInfo& device : devices) {
    EXPECT_FALSE(device.name.empty());
    EXPECT_GT(device.memory_bytes, 0);
    EXPECT_EQ(device.uuid.size(), 40u) << device.uuid;
  }
}

TEST(CudaRuntimeTest, RejectsMismatchedSizes) {
  std::vector<float> out(3), a(3), b(2);
  EXPECT_EQ(CudaVectorAdd(absl::MakeSpan(out), a, b).code(), absl::StatusCode::kInvalidArgument);
}

TEST(CudaRuntimeTest, VectorAddMatchesCpuReferenceBitwise) {
  if (!CudaBuilt()) GTEST_SKIP() << "built without --config=cuda";
  absl::StatusOr<int> count = CudaDeviceCount();
  if (!count.ok()) GTEST_SKIP() << "no usable GPU: " << count.status();
  if (*count == 0) GTEST_SKIP() << "no CUDA device";

  // Odd size larger than one grid of 65535 x 256 threads exercises the grid-stride loop.
  const int64_t n = 65535LL * 256 * 2 + 77;
  std::vector<float> a(n), b(n), out(n, -1.0f), ref(n);
  for (int64_t i = 0; i < n; ++i) {
    a[i] = static_cast<float>(i % 1000) * 0.37f - 11.0f;
    b[i] = 1.0f / static_cast<float>(i + 1);
  }
  vector_add_forward_cpu(ref.data(), a.data(), b.data(), n);
  ASSERT_TRUE(CudaVectorAdd(absl::MakeSpan(out), a, b).ok());
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(out[i], ref[i]) << "at " << i;
  }
}

}  // namespace
}  // namespace strata
