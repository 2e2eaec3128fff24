// The Gloo communicator with 1, 2 and 4 ranks as separate processes over loopback: every
// collective against values computed locally, async handles, bit-identical all-reduce results
// on every rank for non-associative inputs, and a rank that dies making the survivor's
// collective fail within the timeout instead of hanging.
#include "runtime/dist/communicator.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

std::string Dir(const std::string& name) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  if (std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str()) != 0) return "";
  return dir;
}

// Runs `body(rank)` in `size` child processes; returns their exit codes.
template <typename Body>
std::vector<int> RunRanks(int size, Body body) {
  std::vector<pid_t> pids;
  for (int rank = 0; rank < size; ++rank) {
    const pid_t pid = fork();
    if (pid == 0) _exit(body(rank));
    pids.push_back(pid);
  }
  std::vector<int> codes;
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    codes.push_back(WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status));
  }
  return codes;
}

#define CHECK_OR_EXIT(cond, code)                                       \
  do {                                                                  \
    if (!(cond)) {                                                      \
      std::fprintf(stderr, "rank %d: check failed: %s\n", rank, #cond); \
      return code;                                                      \
    }                                                                   \
  } while (0)

// Every collective on `size` ranks; exit code 0 when all results are right.
int Collectives(int rank, int size, const std::string& dir) {
  GlooOptions options;
  options.rank = rank;
  options.size = size;
  options.store_dir = dir + "/store";
  options.prefix = "job-1/attempt-1";
  options.timeout = absl::Seconds(20);
  absl::StatusOr<std::unique_ptr<Communicator>> made = CreateGlooCommunicator(options);
  CHECK_OR_EXIT(made.ok(), 2);
  Communicator& comm = **made;
  CHECK_OR_EXIT(comm.rank() == rank && comm.size() == size, 3);

  // All-reduce.
  std::vector<float> data(1000);
  for (int i = 0; i < 1000; ++i) data[i] = static_cast<float>(rank * 1000 + i);
  CHECK_OR_EXIT(comm.AllReduceSum(absl::MakeSpan(data)).ok(), 4);
  for (int i = 0; i < 1000; ++i) {
    float want = 0;
    for (int r = 0; r < size; ++r) want += static_cast<float>(r * 1000 + i);
    CHECK_OR_EXIT(data[i] == want, 5);
  }
  // Reduce-scatter: segment `rank` of the sum.
  const int m = 7;
  std::vector<float> in(size * m), out(m);
  for (int k = 0; k < size * m; ++k) in[k] = static_cast<float>(rank) + 0.5f * k;
  CHECK_OR_EXIT(comm.ReduceScatterSum(in, absl::MakeSpan(out)).ok(), 6);
  for (int j = 0; j < m; ++j) {
    float want = 0;
    for (int r = 0; r < size; ++r) want += static_cast<float>(r) + 0.5f * (rank * m + j);
    CHECK_OR_EXIT(out[j] == want, 7);
  }
  // All-gather.
  std::vector<float> mine = {static_cast<float>(rank), rank + 0.25f}, all(2 * size);
  CHECK_OR_EXIT(comm.AllGather(mine, absl::MakeSpan(all)).ok(), 8);
  for (int r = 0; r < size; ++r) CHECK_OR_EXIT(all[2 * r] == r && all[2 * r + 1] == r + 0.25f, 9);
  // Broadcast from the last rank.
  std::vector<float> b(5, static_cast<float>(rank));
  CHECK_OR_EXIT(comm.Broadcast(absl::MakeSpan(b), size - 1).ok(), 10);
  for (float v : b) CHECK_OR_EXIT(v == size - 1, 11);
  CHECK_OR_EXIT(comm.Barrier().ok(), 12);
  // Async, in submission order.
  std::vector<float> x(64, 1.0f), y(64, 2.0f);
  Communicator::Handle hx =
      comm.Async([&](Communicator& c) { return c.AllReduceSum(absl::MakeSpan(x)); });
  Communicator::Handle hy =
      comm.Async([&](Communicator& c) { return c.AllReduceSum(absl::MakeSpan(y)); });
  CHECK_OR_EXIT(hy.Wait().ok() && hx.Wait().ok(), 13);
  CHECK_OR_EXIT(x[63] == size && y[0] == 2.0f * size, 14);
  // Non-associative sums: every rank ends with the same bits; written for the parent to compare.
  std::mt19937 rng(rank + 1);
  std::normal_distribution<float> normal(0.0f, 1e4f);
  std::vector<float> noisy(4096);
  for (float& v : noisy) v = normal(rng) * (rng() % 2 ? 1e-4f : 1.0f);
  CHECK_OR_EXIT(comm.AllReduceSum(absl::MakeSpan(noisy)).ok(), 15);
  std::ofstream(absl::StrCat(dir, "/sum.", rank), std::ios::binary)
      .write(reinterpret_cast<const char*>(noisy.data()), noisy.size() * sizeof(float));
  return 0;
}

class CommunicatorTest : public ::testing::TestWithParam<int> {};

TEST_P(CommunicatorTest, EveryCollectiveIsRightOnEveryRank) {
  const int size = GetParam();
  const std::string dir = Dir(absl::StrCat("collectives", size));
  const std::vector<int> codes =
      RunRanks(size, [&](int rank) { return Collectives(rank, size, dir); });
  for (int rank = 0; rank < size; ++rank) EXPECT_EQ(codes[rank], 0) << "rank " << rank;
  auto read = [&](int rank) {
    std::ifstream in(absl::StrCat(dir, "/sum.", rank), std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  const std::string first = read(0);
  ASSERT_EQ(first.size(), 4096 * sizeof(float));
  for (int rank = 1; rank < size; ++rank) EXPECT_TRUE(read(rank) == first) << "rank " << rank;
}

INSTANTIATE_TEST_SUITE_P(Ranks, CommunicatorTest, ::testing::Values(1, 2, 4),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return absl::StrCat(info.param, "_ranks");
                         });

// Rank `rank` of two joining through `dir`: after a barrier, rank 1 runs `peer` and exits, rank 0
// all-reduces `n` floats and returns `judge`(status, time taken) as its exit code.
int PairWithFailingPeer(int rank, const std::string& dir, absl::Duration timeout, int64_t n,
                        const std::function<void(Communicator&)>& peer,
                        const std::function<int(const absl::Status&, absl::Duration)>& judge) {
  GlooOptions options;
  options.rank = rank;
  options.size = 2;
  options.store_dir = dir + "/store";
  options.timeout = timeout;
  absl::StatusOr<std::unique_ptr<Communicator>> comm = CreateGlooCommunicator(options);
  if (!comm.ok()) return 2;
  if (!(*comm)->Barrier().ok()) return 6;  // Both connected: the failure comes afterwards.
  if (rank == 1) {
    peer(**comm);
    _exit(0);
  }
  std::vector<float> data(n, 1.0f);
  const absl::Time start = absl::Now();
  const absl::Status status = (*comm)->AllReduceSum(absl::MakeSpan(data));
  const absl::Duration took = absl::Now() - start;
  std::fprintf(stderr, "rank 0: %s after %s\n", status.ToString().c_str(),
               absl::FormatDuration(took).c_str());
  if (status.ok()) return 3;
  return judge(status, took);
}

TEST(CommunicatorFailureTest, ADeadRankFailsTheOthersFast) {
  const std::string dir = Dir("dead");
  const std::vector<int> codes = RunRanks(2, [&](int rank) {
    return PairWithFailingPeer(
        rank, dir, absl::Seconds(3), 1 << 16, [](Communicator&) {},  // Dies without taking part.
        [](const absl::Status& status, absl::Duration took) {
          if (status.message().find("all-reduce failed on rank 0") == std::string::npos) return 4;
          return took < absl::Seconds(10) ? 0 : 5;
        });
  });
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(codes[1], 0);
}

TEST(CommunicatorFailureTest, AStuckRankTimesTheOthersOut) {
  const std::string dir = Dir("stuck");
  const std::vector<int> codes = RunRanks(2, [&](int rank) {
    return PairWithFailingPeer(
        rank, dir, absl::Seconds(2), 16,
        [](Communicator&) { absl::SleepFor(absl::Seconds(6)); },  // Never joins the collective.
        [](const absl::Status&, absl::Duration took) {
          return took >= absl::Seconds(1) && took < absl::Seconds(5) ? 0 : 4;
        });
  });
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(codes[1], 0);
}

TEST(CommunicatorFailureTest, BadArgumentsAreRefused) {
  GlooOptions options;
  options.rank = 2;
  options.size = 2;
  options.store_dir = Dir("bad");
  EXPECT_EQ(CreateGlooCommunicator(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.rank = 0;
  options.size = 1;
  auto comm = CreateGlooCommunicator(options);
  ASSERT_TRUE(comm.ok()) << comm.status();
  std::vector<float> in(3), out(2);
  EXPECT_EQ((*comm)->ReduceScatterSum(in, absl::MakeSpan(out)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*comm)->Broadcast(absl::MakeSpan(out), 1).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata
