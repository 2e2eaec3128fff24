// See report_channel.h.
#include "services/common/report_channel.h"

#include "absl/strings/str_cat.h"
#include "storage/atomic_file.h"

namespace strata {

absl::Status WriteReport(int fd, const v1::RankReport& report) {
  const std::string body = report.SerializeAsString();
  if (static_cast<int64_t>(body.size()) > kMaxReportBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a report of ", body.size(), " bytes exceeds ", kMaxReportBytes));
  }
  std::string record;
  for (uint64_t n = body.size(); ; n >>= 7) {
    if (n < 0x80) {
      record.push_back(static_cast<char>(n));
      break;
    }
    record.push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  record += body;
  return WriteAll(fd, record.data(), record.size(), "the report channel");
}

absl::StatusOr<std::vector<v1::RankReport>> ReportDecoder::Feed(absl::string_view bytes) {
  buffer_.append(bytes.data(), bytes.size());
  std::vector<v1::RankReport> records;
  size_t at = 0;
  while (at < buffer_.size()) {
    uint64_t length = 0;
    size_t header = 0;
    bool complete = false;
    for (int shift = 0; at + header < buffer_.size(); shift += 7) {
      const uint8_t byte = static_cast<uint8_t>(buffer_[at + header++]);
      length |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        complete = true;
        break;
      }
      if (shift >= 28) break;  // More than 5 bytes: not a length this channel writes.
    }
    if (!complete && header >= 5) {
      return absl::DataLossError(
          absl::StrCat("report channel: bad record length at byte ", consumed_ + at));
    }
    if (!complete) break;
    if (length > static_cast<uint64_t>(kMaxReportBytes)) {
      return absl::DataLossError(absl::StrCat("report channel: a record of ", length,
                                              " bytes at byte ", consumed_ + at, " exceeds ",
                                              kMaxReportBytes));
    }
    if (at + header + length > buffer_.size()) break;
    v1::RankReport report;
    if (!report.ParseFromArray(buffer_.data() + at + header, static_cast<int>(length))) {
      return absl::DataLossError(
          absl::StrCat("report channel: the record at byte ", consumed_ + at, " does not parse"));
    }
    records.push_back(std::move(report));
    at += header + length;
  }
  buffer_.erase(0, at);
  consumed_ += static_cast<int64_t>(at);
  return records;
}

}  // namespace strata
