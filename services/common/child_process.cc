// See child_process.h.
#include "services/common/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "runtime/base/errno_status.h"

namespace strata {

absl::StatusOr<ChildProcess> ChildProcess::Start(const Options& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("ChildProcess: no argv");
  // Everything the child touches is prepared before fork: after it, the child only calls
  // async-signal-safe functions.
  std::vector<std::string> argv = options.argv, env = options.env;
  std::vector<char*> cargs, cenv;
  for (std::string& a : argv) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  for (std::string& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return ErrnoStatus(errno, absl::StrCat("fork for ", argv[0]));
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // The parent died before prctl.
    // Signals the parent blocks (for its own sigwait) must not stay blocked in the child.
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_UNBLOCK, &all, nullptr);
    for (const auto& [child_fd, parent_fd] : options.fds) {
      if (child_fd == parent_fd) {
        fcntl(child_fd, F_SETFD, 0);  // dup2 onto itself would keep O_CLOEXEC.
      } else if (dup2(parent_fd, child_fd) < 0) {
        _exit(126);
      }
    }
    if (!options.cwd.empty() && chdir(options.cwd.c_str()) != 0) {
      dprintf(STDERR_FILENO, "chdir %s: %s\n", options.cwd.c_str(), strerror(errno));
      _exit(126);
    }
    execve(cargs[0], cargs.data(), cenv.data());
    dprintf(STDERR_FILENO, "exec %s: %s\n", cargs[0], strerror(errno));
    _exit(127);
  }
  return ChildProcess(pid);
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    this->~ChildProcess();
    pid_ = std::exchange(other.pid_, -1);
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    kill(-pid_, SIGKILL);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

void ChildProcess::SignalGroup(int signal) const {
  if (pid_ > 0) kill(-pid_, signal);
}

absl::Status ChildProcess::AwaitExit() const {
  if (pid_ <= 0) return absl::FailedPreconditionError("ChildProcess: already reaped");
  siginfo_t info;
  while (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT) != 0) {
    if (errno != EINTR) return ErrnoStatus(errno, absl::StrCat("waitid ", pid_));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> ChildProcess::Wait() {
  if (pid_ <= 0) return absl::FailedPreconditionError("ChildProcess: already reaped");
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoStatus(errno, absl::StrCat("waitpid ", pid_));
  }
  pid_ = -1;
  return status;
}

}  // namespace strata
