// Gang placement: all ranks or none (the free capacity untouched when they do not all fit),
// several ranks per worker and across workers, whole GPUs by index, memory/NVMe and
// node_selector labels.
#include "services/coordinator/placement.h"

#include "gtest/gtest.h"

namespace strata {
namespace {

v1::WorkerInfo Worker(const std::string& id, int cores, int gpus, const std::string& zone) {
  v1::WorkerInfo w;
  w.set_worker_id(id);
  w.mutable_capacity()->set_cores(cores);
  w.mutable_capacity()->set_memory_bytes(int64_t{16} << 30);
  for (int g = 0; g < gpus; ++g) w.mutable_capacity()->add_gpus()->set_index(g);
  v1::NvmePath* nvme = w.mutable_capacity()->add_nvme_paths();
  nvme->set_capacity_bytes(int64_t{100} << 30);
  (*w.mutable_labels())["zone"] = zone;
  return w;
}

v1::Resources Ranks(int ranks, int cores, int gpus = 0) {
  v1::Resources r;
  r.set_ranks(ranks);
  r.set_cores_per_rank(cores);
  r.set_gpus_per_rank(gpus);
  return r;
}

TEST(PlacementTest, AllRanksOrNone) {
  const v1::WorkerInfo a = Worker("a", 4, 0, "x"), b = Worker("b", 4, 0, "y");
  std::vector<FreeCapacity> free = {FullCapacity(a), FullCapacity(b)};
  auto placed = PlaceGang(Ranks(3, 2), &free);  // 2 on a, 1 on b.
  ASSERT_TRUE(placed.has_value());
  ASSERT_EQ(placed->size(), 3u);
  EXPECT_EQ((*placed)[0].worker_id(), "a");
  EXPECT_EQ((*placed)[1].worker_id(), "a");
  EXPECT_EQ((*placed)[2].worker_id(), "b");
  EXPECT_EQ(free[0].cores, 0);
  EXPECT_EQ(free[1].cores, 2);
  // 2 ranks of 2 cores: only one fits now — nothing is taken.
  EXPECT_FALSE(PlaceGang(Ranks(2, 2), &free).has_value());
  EXPECT_EQ(free[1].cores, 2);
  EXPECT_TRUE(PlaceGang(Ranks(1, 2), &free).has_value());
}

TEST(PlacementTest, GpusLabelsMemoryAndNvme) {
  const v1::WorkerInfo a = Worker("a", 8, 2, "x"), b = Worker("b", 8, 4, "y");
  std::vector<FreeCapacity> free = {FullCapacity(a), FullCapacity(b)};
  v1::Resources r = Ranks(2, 1, 2);
  (*r.mutable_node_selector())["zone"] = "y";
  auto placed = PlaceGang(r, &free);
  ASSERT_TRUE(placed.has_value());
  EXPECT_EQ((*placed)[0].worker_id(), "b");
  EXPECT_EQ((*placed)[0].gpu_indices(0), 0);
  EXPECT_EQ((*placed)[1].gpu_indices(0), 2);
  EXPECT_TRUE(free[1].gpus.empty());
  EXPECT_EQ(free[0].gpus.size(), 2u);  // a's GPUs untouched: wrong zone.
  v1::Resources big = Ranks(1, 1);
  big.set_memory_bytes_per_rank(int64_t{17} << 30);
  EXPECT_FALSE(PlaceGang(big, &free).has_value());
  big.set_memory_bytes_per_rank(0);
  big.set_nvme_bytes_per_rank(int64_t{101} << 30);
  EXPECT_FALSE(PlaceGang(big, &free).has_value());
  // Releasing a placement's hold (Reserve is what the scheduler subtracts for placed ranks).
  FreeCapacity full = FullCapacity(b);
  Reserve(r, (*placed)[1], &full);
  EXPECT_EQ(full.cores, 7);
  EXPECT_EQ(full.gpus.size(), 2u);
}

}  // namespace
}  // namespace strata
