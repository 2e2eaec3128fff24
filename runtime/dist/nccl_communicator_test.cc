// The NCCL communicator on the GPUs of this machine (one rank per GPU, up to 2, as processes):
// every collective on device buffers against values computed on the host. Skipped, with the
// reason, without CUDA or a GPU; without CUDA creation reports UNAVAILABLE.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/cuda/cuda_runtime.h"
#include "runtime/dist/communicator.h"
#ifdef STRATA_WITH_CUDA
#include "runtime/dist/nccl_ops.h"
#endif

namespace strata {
namespace {

TEST(NcclCommunicatorTest, UnavailableWithoutCuda) {
  if (CudaBuilt()) GTEST_SKIP() << "this build has CUDA";
  NcclOptions options;
  options.store_dir = std::getenv("TEST_TMPDIR");
  EXPECT_EQ(CreateNcclCommunicator(options).status().code(), absl::StatusCode::kUnavailable);
}

#ifdef STRATA_WITH_CUDA
// One rank's checks; exit code 0 when every result is right.
int Rank(int rank, int size, const std::string& dir) {
  NcclOptions options;
  options.rank = rank;
  options.size = size;
  options.device = rank;
  options.store_dir = dir;
  options.prefix = "nccl-test";
  auto made = CreateNcclCommunicator(options);
  if (!made.ok()) return 2;
  Communicator& comm = **made;
  const size_t n = 1000;
  float* d = nullptr;
  float* e = nullptr;
  if (nccl::Malloc(&d, n * size) != 0 || nccl::Malloc(&e, n * size) != 0) return 3;
  std::vector<float> host(n * size), back(n * size);
  for (size_t i = 0; i < n; ++i) host[i] = static_cast<float>(rank * 1000 + i);
  nccl::CopyToDevice(d, host.data(), n);
  if (!comm.AllReduceSum(absl::MakeSpan(d, n)).ok()) return 4;
  nccl::CopyToHost(back.data(), d, n);
  for (size_t i = 0; i < n; ++i) {
    float want = 0;
    for (int r = 0; r < size; ++r) want += static_cast<float>(r * 1000 + i);
    if (back[i] != want) return 5;
  }
  for (size_t k = 0; k < n * size; ++k) host[k] = static_cast<float>(rank) + 0.5f * k;
  nccl::CopyToDevice(d, host.data(), n * size);
  if (!comm.ReduceScatterSum(absl::MakeSpan(d, n * size), absl::MakeSpan(e, n)).ok()) return 6;
  nccl::CopyToHost(back.data(), e, n);
  for (size_t j = 0; j < n; ++j) {
    float want = 0;
    for (int r = 0; r < size; ++r) want += static_cast<float>(r) + 0.5f * (rank * n + j);
    if (back[j] != want) return 7;
  }
  for (size_t i = 0; i < n; ++i) host[i] = static_cast<float>(rank);
  nccl::CopyToDevice(d, host.data(), n);
  if (!comm.AllGather(absl::MakeSpan(d, n), absl::MakeSpan(e, n * size)).ok()) return 8;
  nccl::CopyToHost(back.data(), e, n * size);
  for (int r = 0; r < size; ++r) {
    if (back[r * n] != r || back[r * n + n - 1] != r) return 9;
  }
  if (!comm.Broadcast(absl::MakeSpan(d, n), size - 1).ok()) return 10;
  nccl::CopyToHost(back.data(), d, n);
  if (back[0] != size - 1) return 11;
  if (!comm.Barrier().ok()) return 12;
  nccl::Free(d);
  nccl::Free(e);
  return 0;
}

TEST(NcclCommunicatorTest, EveryCollectiveOnTheGpus) {
  // Counted in a child: CUDA must not be initialized in a process that forks the ranks.
  const pid_t probe = fork();
  if (probe == 0) {
    absl::StatusOr<int> devices = CudaDeviceCount();
    _exit(devices.ok() ? std::min(*devices, 2) : 0);
  }
  int probe_status = 0;
  waitpid(probe, &probe_status, 0);
  const int devices = WIFEXITED(probe_status) ? WEXITSTATUS(probe_status) : 0;
  if (devices == 0) GTEST_SKIP() << "needs a CUDA GPU: none usable here";
  const int size = devices;
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/nccl";
  std::vector<pid_t> pids;
  for (int rank = 0; rank < size; ++rank) {
    const pid_t pid = fork();
    if (pid == 0) _exit(Rank(rank, size, dir));
    pids.push_back(pid);
  }
  for (int rank = 0; rank < size; ++rank) {
    int status = 0;
    waitpid(pids[rank], &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "rank " << rank << " status " << status;
  }
}
#endif

}  // namespace
}  // namespace strata
