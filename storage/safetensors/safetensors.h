// The safetensors file format (Hugging Face): an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the
// raw little-endian tensor bytes. The parser trusts nothing: every rejection names the file and
// what is wrong (header length, JSON, dtype, shape, offsets out of range, overlapping or leaving
// holes, truncation, trailing bytes), as Hugging Face's own validator would.
//
// Reading converts F32/BF16/F16 to fp32; writing stores fp32 or bf16 (round to nearest even)
// crash-safely: temp file, fsync, rename, fsync of the directory.
#ifndef STRATA_STORAGE_SAFETENSORS_SAFETENSORS_H_
#define STRATA_STORAGE_SAFETENSORS_SAFETENSORS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace strata {

enum class SafetensorsDType { kF32, kBF16, kF16, kF64, kI64, kI32, kI16, kI8, kU8, kBool };

absl::string_view SafetensorsDTypeName(SafetensorsDType dtype);
int SafetensorsDTypeSize(SafetensorsDType dtype);

struct SafetensorsEntry {
  std::string name;
  SafetensorsDType dtype = SafetensorsDType::kF32;
  std::vector<int64_t> shape;
  int64_t begin = 0;  // Byte offsets into the data section.
  int64_t end = 0;
  int64_t numel() const;
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> tensors;  // In data order.
  std::map<std::string, std::string> metadata;
  int64_t data_offset = 0;  // File offset of the data section (8 + header length).
  const SafetensorsEntry* Find(absl::string_view name) const;
};

// Largest header accepted (as Hugging Face's loader): 100 MB.
inline constexpr int64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// Parses and validates the first bytes of a file of `file_size` bytes. `prefix` must hold at
// least 8 bytes and, once the length is known, the whole header; when it is too short the
// error says how many bytes are needed (kOutOfRange), so callers can read more and retry.
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view prefix,
                                                         int64_t file_size,
                                                         absl::string_view source);

// An open safetensors file: the validated header and positional reads of its tensors.
class SafetensorsFile {
 public:
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);
  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const SafetensorsHeader& header() const { return header_; }
  const std::string& path() const { return path_; }

  // Reads tensor `entry` into `out` (numel floats), converting F32/BF16/F16/F64 to fp32.
  absl::Status ReadF32(const SafetensorsEntry& entry, float* out) const;

 private:
  SafetensorsFile(std::string path, int fd, SafetensorsHeader header)
      : path_(std::move(path)), fd_(fd), header_(std::move(header)) {}
  std::string path_;
  int fd_ = -1;
  SafetensorsHeader header_;
};

// One tensor to write: fp32 data of `shape`, either at `data` or, when that is null, produced by
// `source` just before the tensor is written (the pointer must stay valid until the next
// source call), so a file can be written from storage without holding every tensor at once.
struct SafetensorsTensorView {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;
  std::function<absl::StatusOr<const float*>()> source = nullptr;
};

// Writes `tensors` (in the given order) as F32 or BF16, with `metadata`, crash-safely.
absl::Status WriteSafetensors(const std::string& path,
                              absl::Span<const SafetensorsTensorView> tensors,
                              const std::map<std::string, std::string>& metadata,
                              SafetensorsDType dtype = SafetensorsDType::kF32);

// fp32 <-> bf16 (round to nearest even; NaN stays NaN).
uint16_t FloatToBf16(float value);
float Bf16ToFloat(uint16_t value);
float F16ToFloat(uint16_t value);

}  // namespace strata

#endif  // STRATA_STORAGE_SAFETENSORS_SAFETENSORS_H_
