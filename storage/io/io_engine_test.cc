// One conformance suite run against both engines (io_uring and the pread/pwrite thread pool):
// large transfers split into pieces and deep queues, registered buffers, O_DIRECT alignment
// rules, O_DIRECT refused by tmpfs, end-of-file and full-disk errors naming file and offset.
#include "storage/io/io_engine.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

std::string TmpPath(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return std::string(tmp ? tmp : "/tmp") + "/" + name;
}

// 4096-aligned memory.
struct Aligned {
  explicit Aligned(int64_t n) : size(n) {
    data = static_cast<char*>(std::aligned_alloc(4096, static_cast<size_t>(n)));
  }
  ~Aligned() { std::free(data); }
  char* data;
  int64_t size;
};

class IoEngineTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    IoEngineOptions options;
    options.use_io_uring = GetParam();
    options.queue_depth = 4;
    options.block_bytes = 1 << 20;
    std::string why;
    auto engine = CreateIoEngine(options, &why);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
    if (GetParam() && std::string(engine_->name()) != "io_uring") {
      GTEST_SKIP() << "io_uring is not available here: " << why;
    }
    if (!GetParam()) {
      EXPECT_EQ(std::string(engine_->name()), "threads");
      EXPECT_THAT(why, HasSubstr("thread pool"));
    }
  }
  std::unique_ptr<IoEngine> engine_;
};

TEST_P(IoEngineTest, WritesAndReadsBackLargeTransfersAtDepth) {
  auto file =
      IoFile::Open(TmpPath(std::string("data_") + engine_->name()), IoFile::Mode::kCreate, true);
  ASSERT_TRUE(file.ok()) << file.status();
  const int64_t chunk = (3 << 20) + 4096 * 5;  // Not a multiple of the 1 MiB piece size.
  const int requests = 9;                      // More pieces than the queue depth.
  Aligned out(chunk * requests), in(chunk * requests);
  std::mt19937 rng(1);
  for (int64_t i = 0; i < out.size; ++i) out.data[i] = static_cast<char>(rng());
  std::vector<IoRequest> writes, reads;
  for (int r = 0; r < requests; ++r) {
    writes.push_back({IoRequest::Op::kWrite, file->get(), out.data + r * chunk, r * chunk, chunk,
                      static_cast<uint64_t>(r)});
    reads.push_back({IoRequest::Op::kRead, file->get(), in.data + r * chunk, r * chunk, chunk,
                     static_cast<uint64_t>(100 + r)});
  }
  ASSERT_TRUE(RunAll(*engine_, writes).ok());
  ASSERT_TRUE(engine_->RegisterBuffer(in.data, in.size).ok());
  ASSERT_TRUE(engine_->Submit(reads).ok());
  std::vector<IoCompletion> done;
  while (done.size() < reads.size()) ASSERT_TRUE(engine_->Reap(1, &done).ok());
  std::vector<bool> seen(requests);
  for (const IoCompletion& c : done) {
    ASSERT_TRUE(c.status.ok()) << c.status;
    EXPECT_EQ(c.bytes, chunk);
    seen[c.tag - 100] = true;
  }
  for (bool s : seen) EXPECT_TRUE(s);
  EXPECT_EQ(0, std::memcmp(out.data, in.data, out.size));
  EXPECT_EQ(engine_->outstanding(), 0);
}

TEST_P(IoEngineTest, DirectIoAlignmentIsEnforcedWithTheOffsetNamed) {
  auto file =
      IoFile::Open(TmpPath(std::string("align_") + engine_->name()), IoFile::Mode::kCreate, true);
  ASSERT_TRUE(file.ok());
  if (!(*file)->direct()) GTEST_SKIP() << "O_DIRECT is not supported on the test filesystem";
  Aligned buf(8192);
  const IoRequest bad{IoRequest::Op::kWrite, file->get(), buf.data, 100, 4096, 0};
  absl::Status status = engine_->Submit({&bad, 1});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("offset 100"));
}

TEST_P(IoEngineTest, ReadingPastTheEndIsAnErrorNamingFileAndOffset) {
  const std::string path = TmpPath(std::string("short_") + engine_->name());
  auto file = IoFile::Open(path, IoFile::Mode::kCreate, false);
  ASSERT_TRUE(file.ok());
  Aligned buf(8192);
  std::memset(buf.data, 7, 8192);
  const IoRequest write{IoRequest::Op::kWrite, file->get(), buf.data, 0, 5000, 0};
  ASSERT_TRUE(RunAll(*engine_, {&write, 1}).ok());
  const IoRequest read{IoRequest::Op::kRead, file->get(), buf.data, 0, 8192, 1};
  absl::Status status = RunAll(*engine_, {&read, 1});
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_THAT(status.message(), HasSubstr("offset 5000"));
}

TEST_P(IoEngineTest, FullDiskIsResourceExhaustedNamingTheFile) {
  auto file = IoFile::Open("/dev/full", IoFile::Mode::kReadWrite, true);
  if (!file.ok()) GTEST_SKIP() << "/dev/full is not available: " << file.status();
  Aligned buf(4096);
  const IoRequest write{IoRequest::Op::kWrite, file->get(), buf.data, 0, 4096, 0};
  absl::Status status = RunAll(*engine_, {&write, 1});
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(status.message(), HasSubstr("/dev/full"));
}

// open(2) as a filesystem without O_DIRECT support answers (older tmpfs, some overlays).
int OpenRefusingDirect(const char* path, int flags, int mode) {
  if ((flags & O_DIRECT) != 0) {
    errno = EINVAL;
    return -1;
  }
  return open(path, flags, mode);
}

TEST_P(IoEngineTest, RefusedDirectIoFallsBackToBufferedIo) {
  const std::string path = TmpPath(std::string("refused_") + engine_->name());
  auto file = IoFile::OpenWith(path, IoFile::Mode::kCreate, true, &OpenRefusingDirect);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_FALSE((*file)->direct());
  EXPECT_TRUE((*file)->direct_refused());
  Aligned buf(4096), back(4096);
  std::memset(buf.data, 3, 4096);
  const IoRequest write{IoRequest::Op::kWrite, file->get(), buf.data, 0, 4096, 0};
  const IoRequest read{IoRequest::Op::kRead, file->get(), back.data, 0, 4096, 1};
  ASSERT_TRUE(RunAll(*engine_, {&write, 1}).ok());
  ASSERT_TRUE(RunAll(*engine_, {&read, 1}).ok());
  EXPECT_EQ(0, std::memcmp(buf.data, back.data, 4096));
}

TEST_P(IoEngineTest, InterruptedAndShortTransfersAreRetriedToCompletion) {
  // Every transfer is first interrupted (EINTR), then retried as EAGAIN, then comes back short
  // (a third of the bytes); the engine must still move every byte exactly once.
  IoEngineOptions options;
  options.use_io_uring = GetParam();
  options.queue_depth = 3;
  options.block_bytes = 1 << 20;
  int calls = 0;
  options.fault_injector = [&calls](int64_t result) -> int64_t {
    const int phase = calls++ % 3;
    if (result <= 0) return result;
    if (phase == 0) return -EINTR;
    if (phase == 1) return -EAGAIN;
    return result >= 3 * 4096 ? result / 3 / 4096 * 4096 : result;
  };
  auto engine = CreateIoEngine(options);
  ASSERT_TRUE(engine.ok());
  if (GetParam() && std::string((*engine)->name()) != "io_uring") GTEST_SKIP();
  auto file = IoFile::Open(TmpPath(std::string("faulty_") + (*engine)->name()),
                           IoFile::Mode::kCreate, true);
  ASSERT_TRUE(file.ok());
  const int64_t bytes = (5 << 20) + 4096 * 3;
  Aligned out(bytes), in(bytes);
  std::mt19937 rng(11);
  for (int64_t i = 0; i < bytes; ++i) out.data[i] = static_cast<char>(rng());
  const IoRequest write{IoRequest::Op::kWrite, file->get(), out.data, 0, bytes, 1};
  ASSERT_TRUE(RunAll(**engine, {&write, 1}).ok());
  const IoRequest read{IoRequest::Op::kRead, file->get(), in.data, 0, bytes, 2};
  ASSERT_TRUE(RunAll(**engine, {&read, 1}).ok());
  EXPECT_EQ(0, std::memcmp(out.data, in.data, bytes));
  EXPECT_GT(calls, 30);
}

TEST_P(IoEngineTest, InjectedIoErrorIsDataLossNamingTheOffset) {
  IoEngineOptions options;
  options.use_io_uring = GetParam();
  options.block_bytes = 1 << 20;
  options.fault_injector = [](int64_t result) -> int64_t { return result > 0 ? -EIO : result; };
  auto engine = CreateIoEngine(options);
  if (GetParam() && std::string((*engine)->name()) != "io_uring") GTEST_SKIP();
  const std::string path = TmpPath(std::string("eio_") + (*engine)->name());
  auto file = IoFile::Open(path, IoFile::Mode::kCreate, false);
  Aligned buf(2 << 20);
  // One piece, so the failing offset is deterministic (pieces may finish in any order).
  const IoRequest write{IoRequest::Op::kWrite, file->get(), buf.data, 1 << 20, 1 << 20, 1};
  absl::Status status = RunAll(**engine, {&write, 1});
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_THAT(status.message(), HasSubstr("offset 1048576"));
}

INSTANTIATE_TEST_SUITE_P(Engines, IoEngineTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "io_uring" : "threads";
                         });

// io_uring blocked the way container runtimes do (seccomp: io_uring_setup fails with EPERM):
// the engine must fall back to the thread pool and say why. Runs in a child process because a
// seccomp filter cannot be removed.
TEST(IoEngineFallbackTest, SeccompBlockedIoUringFallsBackToThreads) {
  const pid_t pid = fork();
  if (pid == 0) {
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog program = {static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0])), filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
      _exit(3);  // Cannot install the filter here.
    }
    std::string why;
    auto engine = CreateIoEngine(IoEngineOptions(), &why);
    if (!engine.ok()) _exit(4);
    if (std::string((*engine)->name()) != "threads") _exit(5);
    if (why.find("io_uring unavailable") == std::string::npos ||
        why.find("Operation not permitted") == std::string::npos) {
      _exit(6);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 3) GTEST_SKIP() << "seccomp filters cannot be installed here";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "see the exit codes in the child above";
}

TEST(IoEngineOptionsTest, BadOptionsAreRejected) {
  IoEngineOptions options;
  options.block_bytes = 1000;
  EXPECT_EQ(CreateIoEngine(options).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata
