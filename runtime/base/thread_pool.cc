// See thread_pool.h.
#include "runtime/base/thread_pool.h"

#include <sched.h>

#include <algorithm>

#if defined(__x86_64__)
#include <immintrin.h>
#define STRATA_CPU_RELAX() _mm_pause()
#else
#define STRATA_CPU_RELAX() std::this_thread::yield()
#endif

namespace strata {
namespace {

// Spin iterations before a waiting thread sleeps (a few microseconds).
constexpr int kSpins = 4000;

thread_local bool in_parallel_region = false;

int DefaultThreads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// [begin, end) of range `i` of `ranges` over n.
void RangeOf(int64_t n, int ranges, int i, int64_t* begin, int64_t* end) {
  *begin = n * i / ranges;
  *end = n * (i + 1) / ranges;
}

}  // namespace

ThreadPool& ThreadPool::Global() {
  static ThreadPool* pool = new ThreadPool(DefaultThreads());
  return *pool;
}

ThreadPool::ThreadPool(int threads) { Start(threads); }

ThreadPool::~ThreadPool() { Stop(); }

void ThreadPool::Start(int threads) {
  threads_ = std::max(1, threads);
  uint64_t current;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = false;
    ranges_ = 0;
    fn_ = nullptr;
    current = generation_.load(std::memory_order_acquire);
  }
  // New workers wait for work published after they start, never for an earlier generation.
  for (int i = 1; i < threads_; ++i) {
    workers_.emplace_back([this, i, current] { WorkerLoop(i, current); });
  }
}

void ThreadPool::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

void ThreadPool::SetThreads(int threads) {
  threads = std::max(1, threads);
  if (threads == threads_) return;
  Stop();
  Start(threads);
}

void ThreadPool::WorkerLoop(int index, uint64_t seen) {
  while (true) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < kSpins; ++spin) {
      STRATA_CPU_RELAX();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
    }
    bool stop;
    int ranges;
    int64_t n;
    const absl::FunctionRef<void(int64_t, int64_t)>* fn;
    {
      // The generation and the work it names are read together: work is published under mu_.
      std::lock_guard<std::mutex> lock(mu_);
      seen = generation_.load(std::memory_order_acquire);
      stop = stop_;
      ranges = ranges_;
      n = n_;
      fn = fn_;
    }
    if (stop) return;
    if (index < ranges) {
      int64_t begin, end;
      RangeOf(n, ranges, index, &begin, &end);
      in_parallel_region = true;
      (*fn)(begin, end);
      in_parallel_region = false;
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

void ThreadPool::ParallelFor(int64_t n, absl::FunctionRef<void(int64_t, int64_t)> fn) {
  if (n <= 0) return;
  const int ranges = static_cast<int>(std::min<int64_t>(threads_, n));
  if (ranges == 1 || in_parallel_region) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    n_ = n;
    ranges_ = ranges;
    fn_ = &fn;
    pending_.store(ranges - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  int64_t begin, end;
  RangeOf(n, ranges, 0, &begin, &end);
  in_parallel_region = true;
  fn(begin, end);
  in_parallel_region = false;
  for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
    if (spin < kSpins) {
      STRATA_CPU_RELAX();
    } else {
      std::this_thread::yield();
    }
  }
}

}  // namespace strata
