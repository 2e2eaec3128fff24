// ChildProcess: the one place in the services that starts a process. The child runs in its own
// process group (so a signal reaches everything it starts), dies with its parent
// (PR_SET_PDEATHSIG: a crashed daemon leaves no orphan writing files), starts with every signal
// unblocked, in a chosen directory, with a chosen environment and exactly the descriptors it is
// given (every other one of the parent's is closed on exec).
#ifndef STRATA_SERVICES_COMMON_CHILD_PROCESS_H_
#define STRATA_SERVICES_COMMON_CHILD_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace strata {

class ChildProcess {
 public:
  struct Options {
    std::vector<std::string> argv;  // argv[0] is the executable's path.
    std::vector<std::string> env;   // The whole environment, "NAME=value".
    std::string cwd;                // Empty: the parent's.
    // (child fd, parent fd): the parent's descriptor appears as the child's. Parent
    // descriptors must be O_CLOEXEC so nothing else leaks into the child.
    std::vector<std::pair<int, int>> fds;
  };

  // Forks and execs. A failure to chdir or exec shows as exit status 126 or 127 with a line on
  // the child's stderr.
  static absl::StatusOr<ChildProcess> Start(const Options& options);

  ChildProcess(ChildProcess&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();  // Kills (SIGKILL) and reaps the group of a child still running.

  pid_t pid() const { return pid_; }
  // Sends `signal` to the child's process group (nothing once it is reaped).
  void SignalGroup(int signal) const;
  // Blocks until the child has exited, without reaping it: its pid stays its own, so a caller
  // may go on signalling under its own lock and reap with Wait when it holds that lock.
  absl::Status AwaitExit() const;
  // Blocks until the child exits, reaps it; its wait status (WIFEXITED, WEXITSTATUS, ...). Once.
  absl::StatusOr<int> Wait();

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
};

}  // namespace strata

#endif  // STRATA_SERVICES_COMMON_CHILD_PROCESS_H_
