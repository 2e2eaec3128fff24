// strata: the command-line client. Flags are parsed here; commands live in cli.cc.
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "services/cli/cli.h"
#include "services/common/main_util.h"
#include "services/common/tls.h"

ABSL_FLAG(std::string, coordinator, "",
          "Coordinator address host:port. Default: $STRATA_COORDINATOR, else localhost:7070.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10), "Deadline for each call.");
ABSL_FLAG(bool, all, false, "node list: include lost workers.");
ABSL_FLAG(std::string, output, "table", "Output format: table or json.");
ABSL_FLAG(std::string, service, "", "health: the service to check (default: the server).");
ABSL_FLAG(std::string, token, "",
          "Bearer token for job commands. Prefer --token_file or $STRATA_TOKEN: a command "
          "line is visible to every user of the machine.");
ABSL_FLAG(std::string, token_file, "",
          "File whose first line is the bearer token (used when --token is empty). Default: "
          "$STRATA_TOKEN.");
ABSL_FLAG(bool, detach, false, "job submit: return once the job is queued.");
ABSL_FLAG(std::vector<std::string>, config, {},
          "job submit: comma-separated dotted.key=value overrides of the config file.");
ABSL_FLAG(bool, follow, false, "job logs: keep streaming until the job ends.");
ABSL_FLAG(int, tail, 0, "job logs: only the last N lines (then new ones with --follow).");
ABSL_FLAG(std::vector<std::string>, rank, {}, "job logs: only these ranks (comma-separated).");
ABSL_FLAG(std::string, reason, "", "job cancel/kill: why (shown in the job's message).");
ABSL_FLAG(std::string, job, "", "round list: the federated job's id.");

int main(int argc, char** argv) {
  std::vector<std::string> args = strata::InitMain(argc, argv, strata::kCliUsageText);
  strata::CliOptions options;
  options.coordinator = strata::ResolveCoordinatorAddress(absl::GetFlag(FLAGS_coordinator));
  options.timeout = absl::GetFlag(FLAGS_timeout);
  options.all = absl::GetFlag(FLAGS_all);
  options.output = absl::GetFlag(FLAGS_output);
  options.service = absl::GetFlag(FLAGS_service);
  const strata::TlsConfig tls = strata::TlsConfigFromFlags();
  absl::StatusOr<std::string> token = strata::ReadSecret(
      absl::GetFlag(FLAGS_token), absl::GetFlag(FLAGS_token_file), "STRATA_TOKEN", "--token_file");
  absl::Status token_ok = token.status();
  if (token_ok.ok() && !token->empty()) {
    token_ok = strata::CheckTokenTransport(tls, "the user token");
  }
  if (!token_ok.ok()) {
    std::cerr << "strata: " << token_ok.message() << "\n";
    return strata::kCliUsage;
  }
  options.token = *token;
  options.detach = absl::GetFlag(FLAGS_detach);
  options.config_overrides = absl::GetFlag(FLAGS_config);
  options.follow = absl::GetFlag(FLAGS_follow);
  options.tail = absl::GetFlag(FLAGS_tail);
  for (const std::string& r : absl::GetFlag(FLAGS_rank)) {
    int rank = 0;
    if (!absl::SimpleAtoi(r, &rank)) {
      std::cerr << "strata: --rank: \"" << r << "\" is not a number\n";
      return strata::kCliUsage;
    }
    options.ranks.push_back(rank);
  }
  options.reason = absl::GetFlag(FLAGS_reason);
  options.job = absl::GetFlag(FLAGS_job);
  options.progress_bar = isatty(STDOUT_FILENO) != 0;
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      strata::MakeChannelCredentials(tls, "strata");
  if (!credentials.ok()) {
    std::cerr << "strata: " << credentials.status().message() << "\n";
    return strata::kCliUsage;
  }
  options.credentials = *credentials;
  return strata::RunCli(args, options, std::cout, std::cerr);
}
