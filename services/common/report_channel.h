// The channel a rank reports on to its worker: length-delimited strata.v1.RankReport records
// (a varint byte length, then the message) on a pipe. WriteReport is the rank's side;
// ReportDecoder reassembles records from whatever pieces the pipe delivers on the worker's side.
// No text is parsed anywhere on this path.
#ifndef STRATA_SERVICES_COMMON_REPORT_CHANNEL_H_
#define STRATA_SERVICES_COMMON_REPORT_CHANNEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/strata/v1/run_config.pb.h"

namespace strata {

// Records larger than this are refused by both sides.
inline constexpr int64_t kMaxReportBytes = 4 << 20;

// Writes one record to `fd` (blocking until all of it is written).
absl::Status WriteReport(int fd, const v1::RankReport& report);

class ReportDecoder {
 public:
  // Appends `bytes` and returns the records completed by them, in order. DATA_LOSS naming the
  // byte offset when the stream holds something that is not a record (an over-long length, a
  // message that does not parse); the decoder is unusable after that.
  absl::StatusOr<std::vector<v1::RankReport>> Feed(absl::string_view bytes);
  // Bytes of a record not yet complete (a rank that died mid-write leaves some).
  size_t pending_bytes() const { return buffer_.size(); }

 private:
  std::string buffer_;
  int64_t consumed_ = 0;  // Stream offset of buffer_[0].
};

}  // namespace strata

#endif  // STRATA_SERVICES_COMMON_REPORT_CHANNEL_H_
