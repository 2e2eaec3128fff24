// See safetensors.h.
#include "storage/safetensors/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "runtime/base/shown_value.h"
#include "nlohmann/json.hpp"
#include "runtime/base/errno_status.h"
#include "storage/atomic_file.h"

namespace strata {
namespace {

using Json = nlohmann::json;

struct DTypeInfo {
  const char* name;
  SafetensorsDType dtype;
  int size;
};

constexpr DTypeInfo kDTypes[] = {
    {"F32", SafetensorsDType::kF32, 4}, {"BF16", SafetensorsDType::kBF16, 2},
    {"F16", SafetensorsDType::kF16, 2}, {"F64", SafetensorsDType::kF64, 8},
    {"I64", SafetensorsDType::kI64, 8}, {"I32", SafetensorsDType::kI32, 4},
    {"I16", SafetensorsDType::kI16, 2}, {"I8", SafetensorsDType::kI8, 1},
    {"U8", SafetensorsDType::kU8, 1},   {"BOOL", SafetensorsDType::kBool, 1},
};

uint64_t LoadLe64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

absl::Status Bad(absl::string_view source, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", what));
}

}  // namespace

absl::string_view SafetensorsDTypeName(SafetensorsDType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return info.name;
  }
  return "?";
}

int SafetensorsDTypeSize(SafetensorsDType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return info.size;
  }
  return 0;
}

int64_t SafetensorsEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const SafetensorsEntry* SafetensorsHeader::Find(absl::string_view name) const {
  for (const SafetensorsEntry& e : tensors) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view prefix,
                                                         int64_t file_size,
                                                         absl::string_view source) {
  if (file_size < 8) {
    return Bad(source, absl::StrCat("file is ", file_size,
                                    " bytes, too short for the 8-byte header length"));
  }
  if (prefix.size() < 8) return absl::OutOfRangeError(absl::StrCat(source, ": need 8 bytes"));
  const uint64_t header_len = LoadLe64(prefix.data());
  if (header_len > static_cast<uint64_t>(kMaxSafetensorsHeaderBytes)) {
    return Bad(source, absl::StrCat("header length ", header_len, " exceeds the limit of ",
                                    kMaxSafetensorsHeaderBytes, " bytes"));
  }
  if (8 + static_cast<int64_t>(header_len) > file_size) {
    return Bad(source, absl::StrCat("header length ", header_len, " runs past the end of the ",
                                    file_size, "-byte file (truncated?)"));
  }
  if (prefix.size() < 8 + header_len) {
    return absl::OutOfRangeError(
        absl::StrCat(source, ": need ", 8 + header_len, " bytes to parse the header"));
  }
  const absl::string_view text = prefix.substr(8, header_len);
  Json json = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Bad(source, "header is not valid JSON");
  if (!json.is_object()) return Bad(source, "header must be a JSON object");

  SafetensorsHeader header;
  header.data_offset = 8 + static_cast<int64_t>(header_len);
  const int64_t data_size = file_size - header.data_offset;
  for (auto it = json.begin(); it != json.end(); ++it) {
    const std::string& name = it.key();
    const Json& value = it.value();
    if (name == "__metadata__") {
      if (!value.is_object()) return Bad(source, "__metadata__ must be an object");
      for (auto m = value.begin(); m != value.end(); ++m) {
        if (!m.value().is_string()) {
          return Bad(source, absl::StrCat("__metadata__[\"", m.key(), "\"] must be a string"));
        }
        header.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = absl::StrCat("tensor ", ShownValue(name));
    if (!value.is_object()) return Bad(source, absl::StrCat(where, " must be an object"));
    SafetensorsEntry entry;
    entry.name = name;
    if (!value.contains("dtype") || !value["dtype"].is_string()) {
      return Bad(source, absl::StrCat(where, ": missing string \"dtype\""));
    }
    const std::string dtype = value["dtype"].get<std::string>();
    bool known = false;
    for (const DTypeInfo& info : kDTypes) {
      if (dtype == info.name) {
        entry.dtype = info.dtype;
        known = true;
      }
    }
    if (!known) return Bad(source, absl::StrCat(where, ": unknown dtype ", ShownValue(dtype)));
    if (!value.contains("shape") || !value["shape"].is_array()) {
      return Bad(source, absl::StrCat(where, ": missing array \"shape\""));
    }
    // numel * element size must not overflow.
    int64_t numel = 1;
    for (const Json& dim : value["shape"]) {
      if (!dim.is_number_unsigned() && !(dim.is_number_integer() && dim.get<int64_t>() >= 0)) {
        return Bad(source, absl::StrCat(where, ": shape entries must be non-negative integers"));
      }
      const uint64_t d = dim.get<uint64_t>();
      if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          (d != 0 && numel > std::numeric_limits<int64_t>::max() / 8 / static_cast<int64_t>(d))) {
        return Bad(source, absl::StrCat(where, ": shape is too large"));
      }
      numel *= static_cast<int64_t>(d);
      entry.shape.push_back(static_cast<int64_t>(d));
    }
    if (!value.contains("data_offsets") || !value["data_offsets"].is_array() ||
        value["data_offsets"].size() != 2 || !value["data_offsets"][0].is_number_unsigned() ||
        !value["data_offsets"][1].is_number_unsigned()) {
      return Bad(source, absl::StrCat(where, ": \"data_offsets\" must be [begin, end]"));
    }
    const uint64_t begin = value["data_offsets"][0].get<uint64_t>();
    const uint64_t end = value["data_offsets"][1].get<uint64_t>();
    if (begin > end || end > static_cast<uint64_t>(data_size)) {
      return Bad(source,
                 absl::StrCat(where, ": data_offsets [", begin, ", ", end,
                              "] out of range for a data section of ", data_size, " bytes"));
    }
    entry.begin = static_cast<int64_t>(begin);
    entry.end = static_cast<int64_t>(end);
    if (entry.end - entry.begin != numel * SafetensorsDTypeSize(entry.dtype)) {
      return Bad(source, absl::StrCat(where, ": ", entry.end - entry.begin, " bytes for shape of ",
                                      numel, " ", dtype, " elements"));
    }
    header.tensors.push_back(std::move(entry));
  }
  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  int64_t expected = 0;
  for (const SafetensorsEntry& e : header.tensors) {
    if (e.begin < expected) {
      return Bad(source, absl::StrCat("tensor \"", e.name, "\" overlaps the previous tensor (",
                                      "begins at ", e.begin, ", previous ends at ", expected, ")"));
    }
    if (e.begin > expected) {
      return Bad(source, absl::StrCat("hole in the data section before tensor \"", e.name,
                                      "\" (bytes ", expected, " to ", e.begin, ")"));
    }
    expected = e.end;
  }
  if (expected != data_size) {
    return Bad(source,
               absl::StrCat("data section is ", data_size, " bytes but tensors cover ", expected,
                            " (", expected < data_size ? "trailing bytes" : "", ")"));
  }
  return header;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return ErrnoStatus(err, absl::StrCat("stat ", path));
  }
  const int64_t size = st.st_size;
  std::string prefix(static_cast<size_t>(std::min<int64_t>(size, 8)), '\0');
  absl::Status status = PreadAll(fd, prefix.data(), prefix.size(), 0, path);
  absl::StatusOr<SafetensorsHeader> header = status.ok()
                                                 ? ParseSafetensorsHeader(prefix, size, path)
                                                 : absl::StatusOr<SafetensorsHeader>(status);
  if (!header.ok() && absl::IsOutOfRange(header.status()) && prefix.size() == 8) {
    const uint64_t header_len = LoadLe64(prefix.data());
    prefix.resize(8 + header_len);
    status = PreadAll(fd, prefix.data() + 8, header_len, 8, path);
    header = status.ok() ? ParseSafetensorsHeader(prefix, size, path)
                         : absl::StatusOr<SafetensorsHeader>(status);
  }
  if (!header.ok()) {
    close(fd);
    return header.status();
  }
  return SafetensorsFile(path, fd, *std::move(header));
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(other.fd_), header_(std::move(other.header_)) {
  other.fd_ = -1;
}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    path_ = std::move(other.path_);
    fd_ = other.fd_;
    header_ = std::move(other.header_);
    other.fd_ = -1;
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  if (fd_ >= 0) close(fd_);
}

absl::Status SafetensorsFile::ReadF32(const SafetensorsEntry& entry, float* out) const {
  const int64_t n = entry.numel();
  const int64_t offset = header_.data_offset + entry.begin;
  const std::string what = absl::StrCat(path_, " tensor \"", entry.name, "\"");
  switch (entry.dtype) {
    case SafetensorsDType::kF32:
      return PreadAll(fd_, out, n * 4, offset, what);
    case SafetensorsDType::kBF16:
    case SafetensorsDType::kF16: {
      std::vector<uint16_t> raw(n);
      if (absl::Status s = PreadAll(fd_, raw.data(), n * 2, offset, what); !s.ok()) return s;
      const bool bf16 = entry.dtype == SafetensorsDType::kBF16;
      for (int64_t i = 0; i < n; ++i) out[i] = bf16 ? Bf16ToFloat(raw[i]) : F16ToFloat(raw[i]);
      return absl::OkStatus();
    }
    case SafetensorsDType::kF64: {
      std::vector<double> raw(n);
      if (absl::Status s = PreadAll(fd_, raw.data(), n * 8, offset, what); !s.ok()) return s;
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(raw[i]);
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": dtype ", SafetensorsDTypeName(entry.dtype), " is not a floating-point type"));
  }
}

absl::Status WriteSafetensors(const std::string& path,
                              absl::Span<const SafetensorsTensorView> tensors,
                              const std::map<std::string, std::string>& metadata,
                              SafetensorsDType dtype) {
  if (dtype != SafetensorsDType::kF32 && dtype != SafetensorsDType::kBF16) {
    return absl::InvalidArgumentError("safetensors can be written as F32 or BF16 only");
  }
  const int elem = SafetensorsDTypeSize(dtype);
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  int64_t offset = 0;
  for (const SafetensorsTensorView& t : tensors) {
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    header[t.name] = {{"dtype", std::string(SafetensorsDTypeName(dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + numel * elem}}};
    offset += numel * elem;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // Align the data section to 8 bytes.
  return WriteFileAtomically(path, [&](int fd) -> absl::Status {
    char len[8];
    uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    if (absl::Status s = WriteAll(fd, len, 8, path); !s.ok()) return s;
    if (absl::Status s = WriteAll(fd, text.data(), text.size(), path); !s.ok()) return s;
    std::vector<uint16_t> staging;
    for (const SafetensorsTensorView& t : tensors) {
      int64_t numel = 1;
      for (int64_t d : t.shape) numel *= d;
      const float* data = t.data;
      if (data == nullptr) {
        if (!t.source) return absl::InvalidArgumentError(t.name + ": neither data nor a source");
        absl::StatusOr<const float*> produced = t.source();
        if (!produced.ok()) return produced.status();
        data = *produced;
      }
      if (dtype == SafetensorsDType::kF32) {
        if (absl::Status s = WriteAll(fd, data, numel * 4, path); !s.ok()) return s;
        continue;
      }
      staging.resize(numel);
      for (int64_t i = 0; i < numel; ++i) staging[i] = FloatToBf16(data[i]);
      if (absl::Status s = WriteAll(fd, staging.data(), numel * 2, path); !s.ok()) return s;
    }
    return absl::OkStatus();
  });
}

uint16_t FloatToBf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((bits >> 16) | 0x40);
  const uint32_t rounding = 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float Bf16ToFloat(uint16_t value) {
  const uint32_t bits = static_cast<uint32_t>(value) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float F16ToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1f;
  uint32_t mantissa = h & 0x3ff;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000 | (mantissa << 13);
  } else if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // Subnormal: normalize.
      exponent = 127 - 15 + 1;
      while ((mantissa & 0x400) == 0) {
        mantissa <<= 1;
        --exponent;
      }
      bits = sign | (exponent << 23) | ((mantissa & 0x3ff) << 13);
    }
  } else {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace strata
