// See logging.h.
#include "runtime/base/logging.h"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"

namespace strata {
namespace {

LogSeverity InitialSeverity() {
  LogSeverity severity = LogSeverity::kInfo;
  if (const char* env = std::getenv("STRATA_LOG_LEVEL")) ParseLogSeverity(env, &severity);
  return severity;
}

std::atomic<int>& MinSeverityStorage() {
  static std::atomic<int> value(static_cast<int>(InitialSeverity()));
  return value;
}

absl::Mutex& SinkMutex() {
  static absl::Mutex mu(absl::kConstInit);
  return mu;
}

LogSink& SinkLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(SinkMutex()) {
  static LogSink* sink = new LogSink();
  return *sink;
}

char SeverityLetter(LogSeverity severity) {
  switch (severity) {
    case LogSeverity::kDebug:
      return 'D';
    case LogSeverity::kInfo:
      return 'I';
    case LogSeverity::kWarning:
      return 'W';
    case LogSeverity::kError:
      return 'E';
  }
  return '?';
}

}  // namespace

void SetMinLogSeverity(LogSeverity severity) {
  MinSeverityStorage().store(static_cast<int>(severity), std::memory_order_relaxed);
}

LogSeverity MinLogSeverity() {
  return static_cast<LogSeverity>(MinSeverityStorage().load(std::memory_order_relaxed));
}

bool ParseLogSeverity(absl::string_view text, LogSeverity* severity) {
  std::string lower = absl::AsciiStrToLower(text);
  if (lower == "debug") {
    *severity = LogSeverity::kDebug;
  } else if (lower == "info") {
    *severity = LogSeverity::kInfo;
  } else if (lower == "warning" || lower == "warn") {
    *severity = LogSeverity::kWarning;
  } else if (lower == "error") {
    *severity = LogSeverity::kError;
  } else {
    return false;
  }
  return true;
}

void SetLogSink(LogSink sink) {
  absl::MutexLock lock(&SinkMutex());
  SinkLocked() = std::move(sink);
}

namespace logging_internal {

LogMessage::LogMessage(LogSeverity severity, const char* file, int line) : severity_(severity) {
  timeval now;
  gettimeofday(&now, nullptr);
  tm local;
  localtime_r(&now.tv_sec, &local);
  const char* base = file;
  for (const char* p = file; *p != '\0'; ++p) {
    if (*p == '/') base = p + 1;
  }
  stream_ << absl::StrFormat("%c%02d%02d %02d:%02d:%02d.%06d %d %s:%d] ", SeverityLetter(severity),
                             local.tm_mon + 1, local.tm_mday, local.tm_hour, local.tm_min,
                             local.tm_sec, static_cast<int>(now.tv_usec),
                             static_cast<int>(getpid()), base, line);
}

LogMessage::~LogMessage() {
  std::string text = stream_.str();
  absl::MutexLock lock(&SinkMutex());
  if (SinkLocked()) SinkLocked()(severity_, text);
  text.push_back('\n');
  // One write per line; a short write to stderr is not worth retrying here.
  ssize_t ignored = write(STDERR_FILENO, text.data(), text.size());
  (void)ignored;
}

}  // namespace logging_internal
}  // namespace strata
