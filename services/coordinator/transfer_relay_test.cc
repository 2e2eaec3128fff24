// The export relay: chunks pass in order from the worker the transfer was opened for, a full
// buffer holds the worker back, another worker is refused, and a closed transfer refuses more.
#include "services/coordinator/transfer_relay.h"

#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

v1::ExportChunk Chunk(int64_t id, const std::string& worker, int64_t offset) {
  v1::ExportChunk chunk;
  chunk.set_transfer_id(id);
  chunk.set_worker_id(worker);
  chunk.set_file("model.safetensors");
  chunk.set_offset(offset);
  chunk.set_data(std::string(16, 'x'));
  return chunk;
}

TEST(TransferRelayTest, RelaysInOrderWithBackpressureFromTheRightWorkerOnly) {
  TransferRelay relay;
  const int64_t id = relay.Open("alpha");
  EXPECT_EQ(relay.Push(Chunk(id, "mallory", 0), absl::ZeroDuration()).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(relay.Push(Chunk(id + 1, "alpha", 0), absl::ZeroDuration()).code(),
            absl::StatusCode::kNotFound);
  for (size_t i = 0; i < TransferRelay::kMaxBufferedChunks; ++i) {
    ASSERT_TRUE(relay.Push(Chunk(id, "alpha", i * 16), absl::ZeroDuration()).ok());
  }
  // Full: the worker waits (here: times out) until the reader takes a chunk.
  EXPECT_EQ(relay.Push(Chunk(id, "alpha", 999), absl::Milliseconds(20)).code(),
            absl::StatusCode::kDeadlineExceeded);
  std::thread reader([&] {
    for (size_t i = 0; i <= TransferRelay::kMaxBufferedChunks; ++i) {
      absl::StatusOr<v1::ExportChunk> chunk = relay.Pop(id, absl::Seconds(5));
      ASSERT_TRUE(chunk.ok()) << chunk.status();
      EXPECT_EQ(chunk->offset(), static_cast<int64_t>(i * 16));
    }
  });
  EXPECT_TRUE(
      relay.Push(Chunk(id, "alpha", TransferRelay::kMaxBufferedChunks * 16), absl::Seconds(5))
          .ok());
  reader.join();
  EXPECT_EQ(relay.Pop(id, absl::Milliseconds(10)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  relay.Close(id);
  EXPECT_EQ(relay.Push(Chunk(id, "alpha", 0), absl::ZeroDuration()).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(relay.Pop(id, absl::ZeroDuration()).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace strata
