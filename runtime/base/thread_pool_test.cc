#include "runtime/base/thread_pool.h"

#include <atomic>
#include <vector>

#include "gtest/gtest.h"

namespace strata {
namespace {

TEST(ThreadPoolTest, CoversTheRangeExactlyOnceInContiguousPieces) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      std::atomic<int> calls{0};
      pool.ParallelFor(n, [&](int64_t begin, int64_t end) {
        EXPECT_LT(begin, end);
        ++calls;
        for (int64_t i = begin; i < end; ++i) ++hits[i];
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1) << "threads " << threads << " n " << n;
      EXPECT_EQ(calls, std::min<int64_t>(threads, n));
    }
  }
}

TEST(ThreadPoolTest, ManyRoundsAndNestedCallsRunSerially) {
  ThreadPool pool(3);
  int64_t total = 0;
  for (int round = 0; round < 2000; ++round) {
    std::atomic<int64_t> sum{0};
    pool.ParallelFor(30, [&](int64_t begin, int64_t end) {
      int64_t local = 0;
      // A nested call must not deadlock.
      pool.ParallelFor(end - begin, [&](int64_t b, int64_t e) { local += e - b; });
      sum += local;
    });
    total += sum;
  }
  EXPECT_EQ(total, 2000 * 30);
}

TEST(ThreadPoolTest, SetThreadsResizes) {
  ThreadPool pool(2);
  pool.SetThreads(4);
  EXPECT_EQ(pool.threads(), 4);
  std::atomic<int> calls{0};
  pool.ParallelFor(100, [&](int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 4);
  pool.SetThreads(0);
  EXPECT_EQ(pool.threads(), 1);
  // New workers must not replay work published before they started.
  pool.SetThreads(3);
  calls = 0;
  pool.ParallelFor(100, [&](int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 3);
}

}  // namespace
}  // namespace strata
