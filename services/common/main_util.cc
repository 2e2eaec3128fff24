// See main_util.h.
#include "services/common/main_util.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "absl/flags/internal/program_name.h"
#include "absl/flags/internal/usage.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/atomic_file.h"

namespace strata {
namespace {

sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

namespace {
constexpr char kUsagePayload[] = "strata.usage";
}  // namespace

absl::Status UsageError(absl::Status status) {
  if (!status.ok()) status.SetPayload(kUsagePayload, absl::Cord("1"));
  return status;
}

absl::Status Prefixed(absl::string_view what, const absl::Status& status) {
  if (status.ok()) return status;
  absl::Status prefixed(status.code(), absl::StrCat(what, ": ", status.message()));
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    prefixed.SetPayload(url, payload);
  });
  return prefixed;
}

int ExitCode(absl::string_view binary, const absl::Status& status) {
  if (status.ok()) return 0;
  std::fprintf(stderr, "%s: %s\n", std::string(binary).c_str(), status.ToString(absl::StatusToStringMode::kWithNoExtraData).c_str());
  return status.GetPayload(kUsagePayload).has_value() ? 2 : 1;
}

absl::string_view StrataVersion() { return "strata 0.1.0 (API strata.v1)"; }

std::string ResolveCoordinatorAddress(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv("STRATA_COORDINATOR");
  if (env != nullptr && env[0] != '\0') return env;
  return "localhost:7070";
}

std::vector<std::string> InitMain(int argc, char** argv, absl::string_view usage) {
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "services/") || absl::StrContains(file, "runtime/") ||
           absl::StrContains(file, "storage/");
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  config.version_string = [] { return absl::StrCat(StrataVersion(), "\n"); };
  config.normalize_filename = [](absl::string_view file) { return std::string(file); };
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(usage);
  absl::flags_internal::SetProgramInvocationName(argv[0]);
  // Abseil prints --help to stderr and exits 1; a user asking for help gets it on stdout with
  // exit 0. (--helpfull and the other usage flags keep Abseil's behaviour.)
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "--help" || arg == "-help" || arg == "-h") {
      absl::flags_internal::FlagsHelp(std::cout, "services/",
                                      absl::flags_internal::HelpFormat::kHumanReadable, usage);
      std::cout.flush();
      std::exit(0);
    }
  }
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  return std::vector<std::string>(rest.begin() + 1, rest.end());
}

void InitMainWithoutArguments(int argc, char** argv, absl::string_view usage) {
  const std::vector<std::string> args = InitMain(argc, argv, usage);
  if (!args.empty()) {
    std::fprintf(stderr, "%s: unexpected argument \"%s\" (see --help)\n",
                 absl::flags_internal::ShortProgramInvocationName().c_str(), args[0].c_str());
    std::exit(2);
  }
}

void BlockTerminationSignals() {
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForTerminationSignal() {
  sigset_t set = TerminationSignals();
  int signal_number = 0;
  while (sigwait(&set, &signal_number) != 0) {
  }
  return signal_number;
}

absl::Status WritePortFile(const std::string& path, int port) {
  return WriteStringToFileAtomically(path, absl::StrCat(port, "\n"));
}

}  // namespace strata
