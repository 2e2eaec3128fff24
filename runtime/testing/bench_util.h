// Helpers for *_bench binaries: run one case in a child process (so each case's peak RSS is its
// own) and read the figure it prints; medians.
#ifndef STRATA_RUNTIME_TESTING_BENCH_UTIL_H_
#define STRATA_RUNTIME_TESTING_BENCH_UTIL_H_

#include <string>
#include <vector>

namespace strata::bench {

struct ChildResult {
  double value = 0;   // The number after the first ':' of the child's last stdout line.
  double rss_mb = 0;  // The child's peak resident set.
  bool ok = false;
  std::string out;  // The child's whole stdout.
};

// The number after "key": in `text` (a child's JSON output), or 0 when absent.
double NumberAfter(const std::string& text, const std::string& key);

// Runs argv (argv[0] a path; "/proc/self/exe" re-runs this benchmark) and waits for it.
ChildResult RunChild(const std::vector<std::string>& argv);

double Median(std::vector<double> values);

}  // namespace strata::bench

#endif  // STRATA_RUNTIME_TESTING_BENCH_UTIL_H_
