// Start-up and shutdown chores shared by Strata's binaries: flag parsing with a usage text
// limited to the binary's own flags, waiting for SIGINT/SIGTERM, and publishing the bound port
// to a file (so scripts and tests can start daemons on port 0).
#ifndef STRATA_SERVICES_COMMON_MAIN_UTIL_H_
#define STRATA_SERVICES_COMMON_MAIN_UTIL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace strata {

// Parses flags (exits on --help, --version or a bad flag, as Abseil does) and returns the
// positional arguments without argv[0]. `usage` is the text --help prints above the flags;
// only flags defined under services/ and runtime/ are listed.
std::vector<std::string> InitMain(int argc, char** argv, absl::string_view usage);

// InitMain for binaries that take no positional arguments: any is a usage error (exit 2).
void InitMainWithoutArguments(int argc, char** argv, absl::string_view usage);

// Blocks SIGINT and SIGTERM in the calling thread and every thread it starts afterwards.
// Call first in main, before starting threads, then WaitForTerminationSignal.
void BlockTerminationSignals();

// Returns the number of the first SIGINT/SIGTERM received.
int WaitForTerminationSignal();

// Writes "<port>\n" to `path` crash-safely (temp file, fsync, rename).
absl::Status WritePortFile(const std::string& path, int port);

// The coordinator address a client uses: `flag` if set, else $STRATA_COORDINATOR if set, else
// "localhost:7070".
std::string ResolveCoordinatorAddress(const std::string& flag);

// Marks `status` as the operator's to fix (a bad flag, token file or certificate): ExitCode
// maps it to 2.
absl::Status UsageError(absl::Status status);

// `status` with "<what>: " before its message (same code).
absl::Status Prefixed(absl::string_view what, const absl::Status& status);

// The one exit-code mapping of every binary's `absl::Status Run()`: 0 for OK; otherwise prints
// "<binary>: <status>" to stderr and returns 2 for a UsageError, 1 for anything else.
int ExitCode(absl::string_view binary, const absl::Status& status);

// The version string all binaries print for --version.
absl::string_view StrataVersion();

}  // namespace strata

#endif  // STRATA_SERVICES_COMMON_MAIN_UTIL_H_
