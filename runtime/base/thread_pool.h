// The compute thread pool used by CPU kernels: ParallelFor splits [0, n) into one contiguous
// range per thread (the caller runs the first), so the split — and any per-range partial result —
// depends only on n and the thread count.
//
// Why not OpenMP: libgomp workers spin for a long time after each parallel region, and on a
// machine with as many cores as threads they steal cycles from OpenBLAS's workers during the
// matmul that follows. These workers spin briefly, then sleep on a condition variable.
#ifndef STRATA_RUNTIME_BASE_THREAD_POOL_H_
#define STRATA_RUNTIME_BASE_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"

namespace strata {

class ThreadPool {
 public:
  // The process-wide pool; starts with one thread per CPU this process may run on.
  static ThreadPool& Global();

  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Changes the thread count (>= 1). Not to be called concurrently with ParallelFor.
  void SetThreads(int threads);
  int threads() const { return threads_; }

  // Calls fn(begin, end) for threads() contiguous ranges covering [0, n) (fewer when n is
  // small) and returns when all are done. A ParallelFor called from inside fn runs serially.
  void ParallelFor(int64_t n, absl::FunctionRef<void(int64_t begin, int64_t end)> fn);

 private:
  void Start(int threads);
  void Stop();
  // Runs work published after generation `seen`.
  void WorkerLoop(int index, uint64_t seen);

  int threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  // Work description, published by bumping generation_.
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  bool stop_ = false;
  int64_t n_ = 0;
  int ranges_ = 0;
  const absl::FunctionRef<void(int64_t, int64_t)>* fn_ = nullptr;
};

// ThreadPool::Global().ParallelFor(n, fn).
inline void ParallelFor(int64_t n, absl::FunctionRef<void(int64_t begin, int64_t end)> fn) {
  ThreadPool::Global().ParallelFor(n, fn);
}

}  // namespace strata

#endif  // STRATA_RUNTIME_BASE_THREAD_POOL_H_
