// Fuzz target for the safetensors header parser: any bytes must either be rejected with a
// status or yield a header whose tensors tile the data section exactly. Built with libFuzzer by
// tests/fuzz/run_libfuzzer.sh, and run over a fixed corpus plus deterministic mutations by the
// safetensors_fuzz_regression_test target.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "storage/safetensors/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<strata::SafetensorsHeader> header =
      strata::ParseSafetensorsHeader(bytes, static_cast<int64_t>(size), "fuzz");
  if (!header.ok()) return 0;
  int64_t expected = 0;
  for (const strata::SafetensorsEntry& e : header->tensors) {
    if (e.begin != expected || e.end < e.begin) std::abort();
    if (e.end - e.begin != e.numel() * strata::SafetensorsDTypeSize(e.dtype)) std::abort();
    expected = e.end;
  }
  if (header->data_offset + expected != static_cast<int64_t>(size)) std::abort();
  return 0;
}
