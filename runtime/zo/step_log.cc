// See step_log.h.
#include "runtime/zo/step_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "runtime/base/errno_status.h"
#include "storage/atomic_file.h"

namespace strata::zo {
namespace {

constexpr char kMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'Z', 'L'};
constexpr uint32_t kVersion = 1;
constexpr int kHeaderBytes = 24;

int RecordBytes(int q) { return 8 + 8 + 8 + 4 + 4 + 4 * q + 4; }

std::string EncodeHeader(int q) {
  std::string h(kHeaderBytes, '\0');
  std::memcpy(h.data(), kMagic, 8);
  const uint32_t fields[3] = {kVersion, static_cast<uint32_t>(q),
                              static_cast<uint32_t>(RecordBytes(q))};
  std::memcpy(h.data() + 8, fields, 12);
  const uint32_t crc = Crc32(h.data(), 20);
  std::memcpy(h.data() + 20, &crc, 4);
  return h;
}

std::string EncodeRecord(const ZoStepRecord& r, int q) {
  std::string b(RecordBytes(q), '\0');
  char* p = b.data();
  std::memcpy(p, &r.step, 8);
  std::memcpy(p + 8, &r.seed, 8);
  std::memcpy(p + 16, &r.lr, 8);
  std::memcpy(p + 24, &r.loss, 4);
  p[28] = r.skipped ? 1 : 0;
  std::memcpy(p + 32, r.scalars.data(), 4 * q);
  const uint32_t crc = Crc32(b.data(), b.size() - 4);
  std::memcpy(p + b.size() - 4, &crc, 4);
  return b;
}

ZoStepRecord DecodeRecord(const char* p, int q) {
  ZoStepRecord r;
  std::memcpy(&r.step, p, 8);
  std::memcpy(&r.seed, p + 8, 8);
  std::memcpy(&r.lr, p + 16, 8);
  std::memcpy(&r.loss, p + 24, 4);
  r.skipped = p[28] != 0;
  r.scalars.resize(q);
  std::memcpy(r.scalars.data(), p + 32, 4 * q);
  return r;
}

// Parses a whole file; `valid_bytes` is where the last good record ends.
absl::StatusOr<StepLogContents> Parse(const std::string& bytes, const std::string& path, int q,
                                      int64_t* valid_bytes) {
  if (bytes.size() < kHeaderBytes || std::memcmp(bytes.data(), kMagic, 8) != 0) {
    return absl::DataLossError(absl::StrCat(path, ": not a Strata ZO step log (bad header)"));
  }
  uint32_t fields[3], crc;
  std::memcpy(fields, bytes.data() + 8, 12);
  std::memcpy(&crc, bytes.data() + 20, 4);
  if (crc != Crc32(bytes.data(), 20)) {
    return absl::DataLossError(absl::StrCat(path, ": header checksum mismatch"));
  }
  if (fields[0] != kVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": step log version ", fields[0], " is not supported"));
  }
  if (static_cast<int>(fields[1]) != q || static_cast<int>(fields[2]) != RecordBytes(q)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": the log holds ", fields[1], " scalars per step, the job uses ", q));
  }
  StepLogContents contents;
  const int size = RecordBytes(q);
  int64_t offset = kHeaderBytes;
  while (offset + size <= static_cast<int64_t>(bytes.size())) {
    const char* p = bytes.data() + offset;
    uint32_t stored;
    std::memcpy(&stored, p + size - 4, 4);
    if (stored != Crc32(p, size - 4)) {
      if (offset + size == static_cast<int64_t>(bytes.size())) break;  // Torn last record.
      return absl::DataLossError(
          absl::StrCat(path, ": record at offset ", offset, " fails its checksum"));
    }
    ZoStepRecord r = DecodeRecord(p, q);
    if (!contents.records.empty() && r.step != contents.records.back().step + 1) {
      return absl::DataLossError(absl::StrCat(path, ": record at offset ", offset, " is step ",
                                              r.step, " after step ",
                                              contents.records.back().step));
    }
    contents.records.push_back(std::move(r));
    offset += size;
  }
  *valid_bytes = offset;
  contents.torn_tail_bytes = static_cast<int64_t>(bytes.size()) - offset;
  return contents;
}

absl::StatusOr<std::string> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

uint32_t Crc32(const void* data, size_t size, uint32_t crc) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

absl::StatusOr<StepLogContents> ReadStepLog(const std::string& path, int num_scalars) {
  absl::StatusOr<std::string> bytes = ReadAll(path);
  if (!bytes.ok()) return bytes.status();
  int64_t valid = 0;
  return Parse(*bytes, path, num_scalars, &valid);
}

absl::StatusOr<std::unique_ptr<StepLogWriter>> StepLogWriter::Open(const std::string& path,
                                                                   int num_scalars) {
  if (num_scalars < 1) return absl::InvalidArgumentError("a step log needs q >= 1");
  struct stat st;
  std::vector<ZoStepRecord> existing;
  int64_t torn = 0;
  if (stat(path.c_str(), &st) == 0 && st.st_size > 0) {
    absl::StatusOr<std::string> bytes = ReadAll(path);
    if (!bytes.ok()) return bytes.status();
    int64_t valid = 0;
    absl::StatusOr<StepLogContents> contents = Parse(*bytes, path, num_scalars, &valid);
    if (!contents.ok()) return contents.status();
    existing = std::move(contents->records);
    torn = contents->torn_tail_bytes;
    if (torn > 0 && truncate(path.c_str(), valid) != 0) {
      return ErrnoStatus(errno, absl::StrCat("truncate torn tail of ", path));
    }
  } else {
    absl::Status created = WriteStringToFileAtomically(path, EncodeHeader(num_scalars));
    if (!created.ok()) return created;
  }
  const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  std::unique_ptr<StepLogWriter> writer(new StepLogWriter(path, fd, num_scalars));
  writer->existing_ = std::move(existing);
  writer->torn_tail_bytes_ = torn;
  return writer;
}

StepLogWriter::~StepLogWriter() {
  if (fd_ >= 0) close(fd_);
}

absl::Status StepLogWriter::Append(const ZoStepRecord& record, bool sync) {
  if (static_cast<int>(record.scalars.size()) != q_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "step ", record.step, " has ", record.scalars.size(), " scalars, the log ", q_));
  }
  const std::string bytes = EncodeRecord(record, q_);
  if (absl::Status s = WriteAll(fd_, bytes.data(), bytes.size(), path_); !s.ok()) return s;
  return sync ? Sync() : absl::OkStatus();
}

absl::Status StepLogWriter::Sync() {
  if (fdatasync(fd_) != 0) return ErrnoStatus(errno, absl::StrCat("fdatasync ", path_));
  return absl::OkStatus();
}

}  // namespace strata::zo
