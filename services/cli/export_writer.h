// Writes a job's export, as JobService.Export streams it, into a local directory: each file is
// written to `<name>.part` in order (a chunk must continue where the last one ended), fsynced
// and renamed into place when complete, so an interrupted download never leaves a truncated
// file under the final name. File names must be plain names (no directories, no ".."), and an
// existing file (or link) of that name is never replaced.
#ifndef STRATA_SERVICES_CLI_EXPORT_WRITER_H_
#define STRATA_SERVICES_CLI_EXPORT_WRITER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "proto/strata/v1/job.pb.h"

namespace strata {

class ExportWriter {
 public:
  explicit ExportWriter(std::string dir) : dir_(std::move(dir)) {}
  ~ExportWriter();  // Closes and removes an unfinished `.part` file.

  absl::Status Write(const v1::ExportChunk& chunk);
  // The files completed so far, and their total bytes.
  const std::vector<std::string>& files() const { return files_; }
  int64_t bytes() const { return bytes_; }

 private:
  std::string dir_;
  std::string file_;  // Being written.
  int fd_ = -1;
  int64_t written_ = 0;
  int64_t bytes_ = 0;
  std::vector<std::string> files_;
};

}  // namespace strata

#endif  // STRATA_SERVICES_CLI_EXPORT_WRITER_H_
