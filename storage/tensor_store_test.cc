// The tensor store over both I/O engines: extents striped over two directories round-trip
// through pinned slots, and a corrupted byte on disk is caught by the checksum with the file,
// offset and extent named.
#include "storage/tensor_store.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/pinned_slab.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

std::string Dir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return std::string(tmp ? tmp : "/tmp") + "/" + name;
}

class TensorStoreTest : public ::testing::TestWithParam<bool> {};

TEST_P(TensorStoreTest, ExtentsRoundTripThroughPinnedSlotsAndCorruptionIsCaught) {
  IoEngineOptions io;
  io.use_io_uring = GetParam();
  io.block_bytes = 1 << 20;
  auto engine = CreateIoEngine(io);
  ASSERT_TRUE(engine.ok());
  const std::string tag = GetParam() ? "uring" : "threads";
  TensorStore::Options options;
  options.paths = {Dir("nvme0_" + tag), Dir("nvme1_" + tag)};
  options.engine = engine->get();
  const std::vector<int64_t> sizes = {5000, 3 << 20, 4096, 123457, 1};
  auto store = TensorStore::Create(options, sizes);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_NE((*store)->file_of(0), (*store)->file_of(1));
  EXPECT_EQ((*store)->file_of(0), (*store)->file_of(2));
  EXPECT_EQ((*store)->offset_of(2), TensorStore::Padded(5000));

  PinnedSlab::Options slab_options;
  slab_options.slot_bytes = 3 << 20;
  slab_options.slots = 2;
  slab_options.lock = false;
  slab_options.engine = engine->get();
  auto slab = PinnedSlab::Create(slab_options);
  ASSERT_TRUE(slab.ok()) << slab.status();
  char* out = (*slab)->slot(0);
  char* in = (*slab)->slot(1);
  std::mt19937 rng(3);
  std::vector<std::string> expected;
  for (int id = 0; id < 5; ++id) {
    for (int64_t i = 0; i < sizes[id]; ++i) out[i] = static_cast<char>(rng());
    expected.emplace_back(out, sizes[id]);
    ASSERT_TRUE((*store)->SubmitWrite(id, out, id).ok());
    std::vector<IoCompletion> done;
    ASSERT_TRUE((*store)->Reap(1, &done).ok());
    ASSERT_EQ(done.size(), 1u);
    ASSERT_TRUE(done[0].status.ok()) << done[0].status;
  }
  for (int id = 4; id >= 0; --id) {
    std::memset(in, 0, 3 << 20);
    ASSERT_TRUE((*store)->SubmitRead(id, in, 100 + id).ok());
    std::vector<IoCompletion> done;
    ASSERT_TRUE((*store)->Reap(1, &done).ok());
    ASSERT_TRUE(done[0].status.ok()) << done[0].status;
    EXPECT_EQ(done[0].tag, static_cast<uint64_t>(100 + id));
    EXPECT_EQ(std::string(in, sizes[id]), expected[id]) << id;
  }
  // Flip one byte of extent 3 on disk.
  {
    std::fstream f((*store)->file_of(3), std::ios::binary | std::ios::in | std::ios::out);
    f.seekp((*store)->offset_of(3) + 777);
    const char bad = static_cast<char>(expected[3][777] ^ 0x40);
    f.write(&bad, 1);
  }
  ASSERT_TRUE((*store)->SubmitRead(3, in, 7).ok());
  std::vector<IoCompletion> done;
  ASSERT_TRUE((*store)->Reap(1, &done).ok());
  EXPECT_EQ(done[0].status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(done[0].status.message(), HasSubstr("extent 3"));
  EXPECT_THAT(done[0].status.message(), HasSubstr((*store)->file_of(3)));
}

TEST_P(TensorStoreTest, ReadingAnUnwrittenExtentIsRefused) {
  IoEngineOptions io;
  io.use_io_uring = GetParam();
  auto engine = CreateIoEngine(io);
  TensorStore::Options options;
  options.paths = {Dir(GetParam() ? "unwritten_u" : "unwritten_t")};
  options.engine = engine->get();
  auto store = TensorStore::Create(options, {4096});
  ASSERT_TRUE(store.ok());
  alignas(4096) static char buf[4096];
  EXPECT_EQ((*store)->SubmitRead(0, buf, 0).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*store)->SubmitRead(5, buf, 0).code(), absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Engines, TensorStoreTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "io_uring" : "threads";
                         });

}  // namespace
}  // namespace strata
