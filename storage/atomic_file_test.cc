// Crash-safe replacement: the target holds the old or the new content, never a mix, even when
// the writer is killed with SIGKILL in the middle of writing.
#include "storage/atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

std::string Dir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d ? d : "/tmp";
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(AtomicFileTest, ReplacesContent) {
  const std::string path = Dir() + "/a.txt";
  ASSERT_TRUE(WriteStringToFileAtomically(path, "old").ok());
  ASSERT_TRUE(WriteStringToFileAtomically(path, "new content").ok());
  EXPECT_EQ(Read(path), "new content");
}

TEST(AtomicFileTest, FailedFillKeepsTheOldFileAndRemovesTheTemporary) {
  const std::string dir = Dir() + "/fail";
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  const std::string path = dir + "/b.txt";
  ASSERT_TRUE(WriteStringToFileAtomically(path, "good").ok());
  absl::Status status = WriteFileAtomically(path, [](int fd) {
    EXPECT_EQ(write(fd, "par", 3), 3);
    return absl::DataLossError("source went away");
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Read(path), "good");
  int entries = 0;
  DIR* d = opendir(dir.c_str());
  while (dirent* e = readdir(d)) entries += e->d_name[0] != '.';
  closedir(d);
  EXPECT_EQ(entries, 1);
}

TEST(AtomicFileTest, WriterKilledMidWriteLeavesTheOldFile) {
  const std::string path = Dir() + "/c.txt";
  ASSERT_TRUE(WriteStringToFileAtomically(path, "committed").ok());
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    close(ready[0]);
    WriteFileAtomically(path, [&](int fd) {
      const std::string half(1 << 20, 'x');
      (void)WriteAll(fd, half.data(), half.size(), path);
      (void)write(ready[1], "1", 1);  // Half written: tell the parent, then hang.
      pause();
      return absl::OkStatus();
    }).IgnoreError();
    _exit(0);
  }
  close(ready[1]);
  char byte;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(Read(path), "committed");
}

TEST(AtomicFileTest, PreadAllReportsShortFilesWithTheOffset) {
  const std::string path = Dir() + "/d.txt";
  ASSERT_TRUE(WriteStringToFileAtomically(path, "0123456789").ok());
  const int fd = open(path.c_str(), O_RDONLY);
  char buf[8];
  ASSERT_TRUE(PreadAll(fd, buf, 4, 6, path).ok());
  EXPECT_EQ(std::string(buf, 4), "6789");
  absl::Status status = PreadAll(fd, buf, 8, 6, path);
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(status.message(), HasSubstr("offset 10"));
  close(fd);
}

TEST(AtomicFileTest, MakeDirsCreatesParents) {
  const std::string deep = Dir() + "/x/y/z";
  ASSERT_TRUE(MakeDirs(deep).ok());
  ASSERT_TRUE(MakeDirs(deep).ok());  // Existing is fine.
  ASSERT_TRUE(WriteStringToFileAtomically(deep + "/f", "1").ok());
  EXPECT_EQ(MakeDirs(deep + "/f").code(), absl::StatusCode::kFailedPrecondition);
}

TEST(AtomicFileTest, MissingDirectoryIsNamed) {
  absl::Status status = WriteStringToFileAtomically(Dir() + "/nope/e.txt", "x");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("nope/e.txt"));
}

}  // namespace
}  // namespace strata
