// See bench_util.h.
#include "runtime/testing/bench_util.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace strata::bench {

ChildResult RunChild(const std::vector<std::string>& argv) {
  ChildResult result;
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return result;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[1], STDOUT_FILENO);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    std::perror(args[0]);
    _exit(127);
  }
  close(pipe_fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(pipe_fds[0], buf, sizeof(buf))) > 0) out.append(buf, n);
  close(pipe_fds[0]);
  int status = 0;
  rusage usage;
  wait4(pid, &status, 0, &usage);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return result;
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  if (lines.empty()) return result;
  const std::string& last = lines.back();
  const size_t colon = last.find(':');
  if (colon == std::string::npos) return result;
  std::string number = last.substr(colon + 1);
  number.erase(std::remove(number.begin(), number.end(), '}'), number.end());
  result.ok = absl::SimpleAtod(absl::StripAsciiWhitespace(number), &result.value);
  result.rss_mb = usage.ru_maxrss / 1024.0;
  result.out = std::move(out);
  return result;
}

double NumberAfter(const std::string& text, const std::string& key) {
  const std::string quoted = "\"" + key + "\":";
  const size_t at = text.rfind(quoted);
  if (at == std::string::npos) return 0.0;
  return std::strtod(text.c_str() + at + quoted.size(), nullptr);
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0.0 : values[values.size() / 2];
}

}  // namespace strata::bench
