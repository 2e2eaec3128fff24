// Multi-process tests: ranks run as forked children of the test (real processes, as a
// communicator's ranks are), and rank 0 hands its result back through a file of floats.
#ifndef STRATA_RUNTIME_TESTING_FORKED_RANKS_H_
#define STRATA_RUNTIME_TESTING_FORKED_RANKS_H_

#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace strata::testing_ranks {

// Runs `rank_main(rank)` in `world` forked processes (its return value is the exit code) and
// expects every one to exit 0; `name` labels failures. Fork before the test computes anything
// with the compute thread pool: a child inherits none of its threads.
inline void RunForkedRanks(int world, const std::function<int(int rank)>& rank_main,
                           const std::string& name) {
  std::vector<pid_t> pids;
  for (int rank = 0; rank < world; ++rank) {
    const pid_t pid = fork();
    if (pid == 0) _exit(rank_main(rank));
    pids.push_back(pid);
  }
  for (int rank = 0; rank < world; ++rank) {
    int status = 0;
    waitpid(pids[rank], &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << name << " rank " << rank << " status " << status;
  }
}

inline void WriteFloats(const std::string& path, const float* data, int64_t n) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(data), n * static_cast<int64_t>(sizeof(float)));
}

// The floats WriteFloats wrote to `path` (empty when there is no file).
inline std::vector<float> ReadFloats(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  const std::string s = bytes.str();
  std::vector<float> w(s.size() / sizeof(float));
  std::memcpy(w.data(), s.data(), w.size() * sizeof(float));
  return w;
}

}  // namespace strata::testing_ranks

#endif  // STRATA_RUNTIME_TESTING_FORKED_RANKS_H_
