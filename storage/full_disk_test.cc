// ENOSPC on a real, full filesystem: a 1 MiB tmpfs mounted in a private mount namespace of a
// child process. Writes through both I/O engines fail with RESOURCE_EXHAUSTED naming the file
// and offset, an atomic file replacement fails without touching the old file, and a checkpoint
// that does not fit fails to commit while the previous one stays valid. Skips where mounting is
// not permitted.
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "storage/atomic_file.h"
#include "storage/checkpoint.h"
#include "storage/io/io_engine.h"

namespace strata {
namespace {

// Exit codes of the child: 0 ok, 2 cannot mount (skip), 10+ the failed check.
int FullDiskChecks(const std::string& dir) {
  if (unshare(CLONE_NEWNS) != 0) return 2;
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 2;
  if (mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=1m") != 0) return 2;

  for (bool uring : {true, false}) {
    IoEngineOptions options;
    options.use_io_uring = uring;
    auto engine = CreateIoEngine(options);
    if (!engine.ok()) return 10;
    const std::string path = dir + (uring ? "/big_uring" : "/big_threads");
    auto file = IoFile::Open(path, IoFile::Mode::kCreate, true);
    if (!file.ok()) return 11;
    char* buf = static_cast<char*>(std::aligned_alloc(4096, 2 << 20));
    const IoRequest write{IoRequest::Op::kWrite, file->get(), buf, 0, 2 << 20, 0};
    absl::Status status = RunAll(**engine, {&write, 1});
    std::free(buf);
    if (status.code() != absl::StatusCode::kResourceExhausted) return 12;
    if (status.message().find(path) == absl::string_view::npos) return 13;
    if (status.message().find("No space left on device") == absl::string_view::npos) return 14;
    unlink(path.c_str());
  }

  // A file registered with an io_uring ring stays allocated until the ring's (asynchronous)
  // teardown finishes, even after unlink and close: wait for the space to come back.
  for (int i = 0; i < 200; ++i) {
    struct statvfs fs;
    if (statvfs(dir.c_str(), &fs) == 0 && fs.f_bfree * fs.f_frsize >= (900 << 10)) break;
    usleep(10000);
  }
  const std::string keep = dir + "/keep.txt";
  if (absl::Status s = WriteStringToFileAtomically(keep, "old"); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 20;
  }
  if (WriteStringToFileAtomically(keep, std::string(2 << 20, 'x')).code() !=
      absl::StatusCode::kResourceExhausted) {
    return 21;
  }
  std::ifstream in(keep);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text != "old") return 22;

  auto manager = CheckpointManager::Create({dir + "/ckpt", 2});
  if (!manager.ok()) return 30;
  {
    auto writer = (*manager)->Begin(1);
    std::ofstream(writer->dir() + "/state.bin") << std::string(100 << 10, 's');
    if (!writer->Commit({{"step", 1}}).ok()) return 31;
  }
  {
    auto writer = (*manager)->Begin(2);
    {
      std::ofstream out(writer->dir() + "/state.bin");
      out << std::string(2 << 20, 't');  // Does not fit: the file is cut short.
    }
    (void)writer->Commit({{"step", 2}});  // May fail or commit a short file; both are handled.
  }
  auto latest = (*manager)->LatestValid(nullptr);
  if (!latest.ok()) return 32;
  if (latest->step == 2) {
    // Committed with what fitted: the manifest must describe exactly that.
    struct stat st;
    if (stat((latest->dir + "/state.bin").c_str(), &st) != 0 || st.st_size >= (2 << 20)) {
      return 33;
    }
  }
  return 0;
}

TEST(FullDiskTest, NoSpaceIsReportedAndNothingCommittedIsLost) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp ? tmp : "/tmp") + "/small_fs";
  mkdir(dir.c_str(), 0755);
  const pid_t pid = fork();
  if (pid == 0) _exit(FullDiskChecks(dir));
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 2) GTEST_SKIP() << "mounting a tmpfs is not permitted here";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failed check code (see FullDiskChecks)";
}

}  // namespace
}  // namespace strata
