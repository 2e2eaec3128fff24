// The ZO step log: one fixed-size binary record per step — (step, seed, lr, loss, skipped,
// q scalars) plus a CRC-32 — appended to a file. With the checkpoint a job started from, the
// log rebuilds the weights of any later step bit for bit (ZoOptimizer::Replay).
//
// File: 24-byte header {magic "STRATAZL", u32 version 1, u32 q, u32 record bytes, u32 CRC-32 of
// the preceding 20 bytes}, then records {i64 step, u64 seed, f64 lr, f32 loss, u8 skipped,
// 3 zero bytes, f32 scalars[q], u32 CRC-32 of the preceding record bytes}, little-endian.
// A crash can leave a torn last record; opening for append cuts it off (reported). A bad record
// anywhere else is corruption and is refused with its offset.
#ifndef STRATA_RUNTIME_ZO_STEP_LOG_H_
#define STRATA_RUNTIME_ZO_STEP_LOG_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/zo/zo_optimizer.h"

namespace strata::zo {

uint32_t Crc32(const void* data, size_t size, uint32_t crc = 0);

struct StepLogContents {
  std::vector<ZoStepRecord> records;
  int64_t torn_tail_bytes = 0;  // Bytes after the last whole, valid record.
};

// Reads every record. `num_scalars` must match the file's q.
absl::StatusOr<StepLogContents> ReadStepLog(const std::string& path, int num_scalars);

class StepLogWriter {
 public:
  // Creates `path` or opens it for appending after validating it (cutting off a torn tail).
  static absl::StatusOr<std::unique_ptr<StepLogWriter>> Open(const std::string& path,
                                                             int num_scalars);
  ~StepLogWriter();

  // Appends one record with a single write; fsyncs when `sync` is set.
  absl::Status Append(const ZoStepRecord& record, bool sync);
  absl::Status Sync();
  // Records in the file when it was opened (after cutting a torn tail).
  const std::vector<ZoStepRecord>& existing() const { return existing_; }
  int64_t torn_tail_bytes() const { return torn_tail_bytes_; }

 private:
  StepLogWriter(std::string path, int fd, int q) : path_(std::move(path)), fd_(fd), q_(q) {}
  std::string path_;
  int fd_;
  int q_;
  std::vector<ZoStepRecord> existing_;
  int64_t torn_tail_bytes_ = 0;
};

}  // namespace strata::zo

#endif  // STRATA_RUNTIME_ZO_STEP_LOG_H_
