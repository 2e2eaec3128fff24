// Minimal leveled logging for Strata binaries (Debian's Abseil has no absl/log).
//
//   STRATA_LOG(INFO) << "registered worker " << id;
//
// A line is formatted as "I1124 09:30:00.123456 12345 file.cc:42] text" and written with a
// single write(2) to stderr, so lines from threads never interleave. A sink can be installed
// (the worker forwards its ranks' lines to the coordinator this way). Fatal errors are not
// logged here: below main, failures are returned as absl::Status.
#ifndef STRATA_RUNTIME_BASE_LOGGING_H_
#define STRATA_RUNTIME_BASE_LOGGING_H_

#include <functional>
#include <sstream>

#include "absl/strings/string_view.h"

namespace strata {

enum class LogSeverity { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Lines below `severity` are dropped. Default kInfo; STRATA_LOG_LEVEL=debug|info|warning|error
// in the environment sets the initial value.
void SetMinLogSeverity(LogSeverity severity);
LogSeverity MinLogSeverity();

// Parses "debug", "info", "warning", "error" (case-insensitive).
bool ParseLogSeverity(absl::string_view text, LogSeverity* severity);

// Receives every formatted line (without the trailing newline) in addition to stderr.
// Pass nullptr to remove. The sink is called under the logging lock: keep it short.
using LogSink = std::function<void(LogSeverity, absl::string_view line)>;
void SetLogSink(LogSink sink);

namespace logging_internal {

class LogMessage {
 public:
  LogMessage(LogSeverity severity, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogSeverity severity_;
  std::ostringstream stream_;
};

}  // namespace logging_internal
}  // namespace strata

#define STRATA_LOG_SEVERITY_DEBUG ::strata::LogSeverity::kDebug
#define STRATA_LOG_SEVERITY_INFO ::strata::LogSeverity::kInfo
#define STRATA_LOG_SEVERITY_WARNING ::strata::LogSeverity::kWarning
#define STRATA_LOG_SEVERITY_ERROR ::strata::LogSeverity::kError

#define STRATA_LOG(severity)                                                                   \
  if (STRATA_LOG_SEVERITY_##severity < ::strata::MinLogSeverity()) {                           \
  } else                                                                                       \
    ::strata::logging_internal::LogMessage(STRATA_LOG_SEVERITY_##severity, __FILE__, __LINE__) \
        .stream()

#endif  // STRATA_RUNTIME_BASE_LOGGING_H_
