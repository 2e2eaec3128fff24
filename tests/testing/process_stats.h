// Figures about a running process for benchmarks that drive a real daemon: its CPU seconds and
// peak resident set from /proc, and percentiles of measured latencies.
#ifndef STRATA_TESTS_TESTING_PROCESS_STATS_H_
#define STRATA_TESTS_TESTING_PROCESS_STATS_H_

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace strata::testing {

// utime + stime of `pid` so far, in seconds.
inline double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the ")" of the command name: state is field 3; utime 14, stime 15.
  std::vector<std::string> fields = absl::StrSplit(text.substr(text.rfind(')') + 2), ' ');
  double utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtod(fields[11], &utime) ||
      !absl::SimpleAtod(fields[12], &stime)) {
    return 0;
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The peak resident set of `pid` (VmHWM), in MB.
inline double PeakRssMb(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      double kb = 0;
      absl::SimpleAtod(absl::StripAsciiWhitespace(line.substr(6, line.size() - 9)), &kb);
      return kb / 1024;
    }
  }
  return 0;
}

// The q-quantile (0..1) of `v`, 0 when empty.
inline double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace strata::testing

#endif  // STRATA_TESTS_TESTING_PROCESS_STATS_H_
