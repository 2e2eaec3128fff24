// The `strata` command line, as a function of its arguments so tests can run it in-process.
// Commands follow `strata <noun> <verb>`; each talks to the coordinator over gRPC and turns
// failures into one line on stderr and a non-zero exit code.
#ifndef STRATA_SERVICES_CLI_CLI_H_
#define STRATA_SERVICES_CLI_CLI_H_

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/security/credentials.h"

namespace strata {

struct CliOptions {
  std::string coordinator = "localhost:7070";
  absl::Duration timeout = absl::Seconds(10);
  bool all = false;              // node list: include lost workers.
  std::string output = "table";  // table | json
  std::string service;           // health: a service name; empty for the whole server.
  std::string token;             // Bearer token for JobService (--token or STRATA_TOKEN).
  bool detach = false;           // job submit: return once queued instead of following.
  std::vector<std::string> config_overrides;  // job submit: dotted.key=value.
  bool follow = false;                        // job logs: keep streaming until the job ends.
  int tail = 0;                               // job logs: only the last N lines first (0: all).
  std::vector<int> ranks;                     // job logs: only these ranks.
  std::string reason;                         // job cancel/kill.
  std::string job;                            // round list: the federated job.
  bool progress_bar = false;  // job submit/wait: redraw one line (a terminal) vs. lines.
  // How to reach the coordinator (TLS or, with --insecure, plaintext). Null: plaintext.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
};

// Exit codes.
inline constexpr int kCliOk = 0;
inline constexpr int kCliFailed = 1;  // The command ran and failed (unhealthy, RPC error).
inline constexpr int kCliUsage = 2;   // Unknown command or bad arguments.

// The command summary printed by --help and after usage errors.
extern const char kCliUsageText[];

// Runs the command in `args` (positional arguments, without the program name).
int RunCli(const std::vector<std::string>& args, const CliOptions& options, std::ostream& out,
           std::ostream& err);

}  // namespace strata

#endif  // STRATA_SERVICES_CLI_CLI_H_
