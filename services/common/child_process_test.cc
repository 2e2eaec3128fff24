// ChildProcess with real processes: argv, environment, working directory and the descriptors
// given arrive in the child and nothing else does; the child leads its own process group, so a
// group signal reaches its children too; exit statuses and exec failures come back.
#include "services/common/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace strata {
namespace {

std::string ReadAll(int fd) {
  std::string all;
  char chunk[256];
  ssize_t n;
  while ((n = read(fd, chunk, sizeof(chunk))) > 0) all.append(chunk, n);
  return all;
}

TEST(ChildProcessTest, GetsExactlyItsArgvEnvironmentDirectoryAndDescriptors) {
  int out[2], extra[2], leaked[2];
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(extra, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(leaked, O_CLOEXEC), 0);
  const char* tmp = std::getenv("TEST_TMPDIR");
  ChildProcess::Options options;
  options.argv = {"/bin/sh", "-c",
                  "echo \"$1 $GREETING $(pwd)\"; echo report >&3; "
                  "if [ -e /proc/self/fd/" + std::to_string(leaked[1]) +
                      " ]; then echo leaked; fi; exit 7",
                  "sh", "arg1"};
  options.env = {"GREETING=hello", "PATH=/usr/bin:/bin"};
  options.cwd = tmp != nullptr ? tmp : "/tmp";
  options.fds = {{STDOUT_FILENO, out[1]}, {3, extra[1]}};
  auto child = ChildProcess::Start(options);
  ASSERT_TRUE(child.ok()) << child.status();
  close(out[1]);
  close(extra[1]);
  close(leaked[1]);
  EXPECT_EQ(ReadAll(out[0]), "arg1 hello " + options.cwd + "\n");
  EXPECT_EQ(ReadAll(extra[0]), "report\n");
  auto status = child->Wait();
  ASSERT_TRUE(status.ok());
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 7);
  EXPECT_FALSE(child->Wait().ok());  // Reaped once.
}

TEST(ChildProcessTest, AGroupSignalReachesTheChildsOwnChildren) {
  int out[2];
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  ChildProcess::Options options;
  // The grandchild holds the pipe open: it closes only when the group is killed.
  options.argv = {"/bin/sh", "-c", "sleep 60 & echo started; wait"};
  options.env = {"PATH=/usr/bin:/bin"};
  options.fds = {{STDOUT_FILENO, out[1]}};
  auto child = ChildProcess::Start(options);
  ASSERT_TRUE(child.ok()) << child.status();
  close(out[1]);
  char line[16] = {};
  ASSERT_GT(read(out[0], line, sizeof(line) - 1), 0);
  EXPECT_EQ(getpgid(child->pid()), child->pid());
  child->SignalGroup(SIGKILL);
  ASSERT_TRUE(child->AwaitExit().ok());
  EXPECT_EQ(getpgid(child->pid()), child->pid());  // Exited, not reaped: still its pid.
  auto status = child->Wait();
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFSIGNALED(*status));
  EXPECT_EQ(ReadAll(out[0]), "");  // EOF: the sleeping grandchild died with the group.
}

TEST(ChildProcessTest, AMissingExecutableExitsWith127) {
  ChildProcess::Options options;
  options.argv = {"/nonexistent/strata-train"};
  auto child = ChildProcess::Start(options);
  ASSERT_TRUE(child.ok());
  auto status = child->Wait();
  ASSERT_TRUE(status.ok());
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 127);
}

}  // namespace
}  // namespace strata
