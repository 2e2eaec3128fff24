// Child processes for multi-process tests: start a binary with arguments, capture its stdout
// and stderr to files, signal it (SIGKILL for fault injection), wait for its exit status.
#ifndef STRATA_TESTS_TESTING_SUBPROCESS_H_
#define STRATA_TESTS_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace strata::testing {

// config.json of the tiny LLaMA the end-to-end tests train (2 layers, width 32, byte vocabulary).
inline constexpr char kTinyLlamaConfigJson[] =
    R"({"model_type": "llama", "vocab_size": 257, "hidden_size": 32, "intermediate_size": 64, )"
    R"("num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, )"
    R"("max_position_embeddings": 32, "tie_word_embeddings": true})";

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal.
  int signal = 0;
  std::string out;
  std::string err;
};

class Subprocess {
 public:
  // Starts argv[0] with `argv` (and extra "NAME=value" environment entries). Output goes to
  // files under `log_dir` named after `name`.
  static absl::StatusOr<Subprocess> Start(const std::vector<std::string>& argv,
                                          const std::string& log_dir, const std::string& name,
                                          const std::vector<std::string>& extra_env = {});

  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  // Kills (SIGKILL) and reaps a child still running.
  ~Subprocess();

  pid_t pid() const { return pid_; }
  absl::Status Signal(int signal_number);
  // Waits for exit up to `timeout`; kDeadlineExceeded if still running.
  absl::StatusOr<ProcessResult> Wait(absl::Duration timeout);
  // What the child has written so far.
  std::string Stdout() const;
  std::string Stderr() const;

 private:
  Subprocess(pid_t pid, std::string out_path, std::string err_path)
      : pid_(pid), out_path_(std::move(out_path)), err_path_(std::move(err_path)) {}

  pid_t pid_ = -1;
  std::string out_path_;
  std::string err_path_;
};

// Runs to completion (killing it after `timeout`) and returns exit status and output.
absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         const std::string& log_dir,
                                         absl::Duration timeout = absl::Seconds(60),
                                         const std::vector<std::string>& extra_env = {});

// Reads a whole file; "" if missing.
std::string ReadFileOrEmpty(const std::string& path);

// $TEST_TMPDIR, or /tmp outside Bazel.
std::string TestTmpDir();

// `path` resolved to an absolute path (symbolic links followed); `path` itself if it does not
// resolve. Daemons started in another directory get binaries and files this way.
std::string Absolute(const std::string& path);

// The port a daemon wrote to its --port_file, waiting up to 30 s; 0 (and a test failure
// showing the daemon's stderr) if none appears.
int WaitForPortFile(const std::string& path, Subprocess& process);

}  // namespace strata::testing

#endif  // STRATA_TESTS_TESTING_SUBPROCESS_H_
