// strata: the command-line client. Flags are parsed here; commands live in cli.cc.
#include <iostream>

#include "absl/flags/flag.h"
#include "services/cli/cli.h"
#include "services/common/main_util.h"

ABSL_FLAG(std::string, coordinator, "",
          "Coordinator address host:port. Default: $STRATA_COORDINATOR, else localhost:7070.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10), "Deadline for each call.");
ABSL_FLAG(bool, all, false, "node list: include lost workers.");
ABSL_FLAG(std::string, output, "table", "Output format: table or json.");
ABSL_FLAG(std::string, service, "", "health: the service to check (default: the server).");

int main(int argc, char** argv) {
  std::vector<std::string> args = strata::InitMain(argc, argv, strata::kCliUsageText);
  strata::CliOptions options;
  options.coordinator = strata::ResolveCoordinatorAddress(absl::GetFlag(FLAGS_coordinator));
  options.timeout = absl::GetFlag(FLAGS_timeout);
  options.all = absl::GetFlag(FLAGS_all);
  options.output = absl::GetFlag(FLAGS_output);
  options.service = absl::GetFlag(FLAGS_service);
  return strata::RunCli(args, options, std::cout, std::cerr);
}
