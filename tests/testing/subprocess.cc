// See subprocess.h.
#include "tests/testing/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "runtime/base/errno_status.h"

extern char** environ;

namespace strata::testing {

std::string TestTmpDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

std::string Absolute(const std::string& path) {
  char resolved[PATH_MAX];
  return realpath(path.c_str(), resolved) != nullptr ? resolved : path;
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<Subprocess> Subprocess::Start(const std::vector<std::string>& argv,
                                             const std::string& log_dir, const std::string& name,
                                             const std::vector<std::string>& extra_env) {
  static std::atomic<int> counter{0};
  const std::string stem = absl::StrCat(log_dir, "/", name, ".", counter++);
  std::string out_path = stem + ".out";
  std::string err_path = stem + ".err";

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  // The child gets default signal handling and an empty mask even if the test blocked some.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty, all;
  sigemptyset(&empty);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
  for (const std::string& e : extra_env) env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);

  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return ErrnoStatus(rc, absl::StrCat("spawn ", argv[0]));
  return Subprocess(pid, std::move(out_path), std::move(err_path));
}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(other.pid_),
      out_path_(std::move(other.out_path_)),
      err_path_(std::move(other.err_path_)) {
  other.pid_ = -1;
}

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    this->~Subprocess();
    pid_ = other.pid_;
    out_path_ = std::move(other.out_path_);
    err_path_ = std::move(other.err_path_);
    other.pid_ = -1;
  }
  return *this;
}

Subprocess::~Subprocess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
}

absl::Status Subprocess::Signal(int signal_number) {
  if (pid_ <= 0) return absl::FailedPreconditionError("process already reaped");
  if (kill(pid_, signal_number) != 0) return ErrnoStatus(errno, absl::StrCat("kill ", pid_));
  return absl::OkStatus();
}

absl::StatusOr<ProcessResult> Subprocess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("process already reaped");
  const absl::Time deadline = absl::Now() + timeout;
  int status = 0;
  while (true) {
    const pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) break;
    if (done < 0) return ErrnoStatus(errno, absl::StrCat("waitpid ", pid_));
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("pid ", pid_, " still running after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  pid_ = -1;
  ProcessResult result;
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  result.out = Stdout();
  result.err = Stderr();
  return result;
}

std::string Subprocess::Stdout() const { return ReadFileOrEmpty(out_path_); }
std::string Subprocess::Stderr() const { return ReadFileOrEmpty(err_path_); }

absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         const std::string& log_dir, absl::Duration timeout,
                                         const std::vector<std::string>& extra_env) {
  absl::StatusOr<Subprocess> process = Subprocess::Start(argv, log_dir, "run", extra_env);
  if (!process.ok()) return process.status();
  absl::StatusOr<ProcessResult> result = process->Wait(timeout);
  if (!result.ok()) process->Signal(SIGKILL).IgnoreError();
  return result;
}

int WaitForPortFile(const std::string& path, Subprocess& process) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    int port = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFileOrEmpty(path)), &port) && port > 0) {
      return port;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  ADD_FAILURE() << "no port in " << path << "; stderr:\n" << process.Stderr();
  return 0;
}

}  // namespace strata::testing
