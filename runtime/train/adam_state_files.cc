// See adam_state_files.h.
#include "runtime/train/adam_state_files.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"
#include "storage/safetensors/safetensors.h"

namespace strata {

absl::Status WriteAdamState(const std::string& dir, absl::Span<float> m, absl::Span<float> v) {
  return WriteSafetensors(
      absl::StrCat(dir, "/", kAdamStateFile),
      {{"m", {static_cast<int64_t>(m.size())}, m.data()},
       {"v", {static_cast<int64_t>(v.size())}, v.data()}},
      {});
}

absl::Status ReadAdamState(const std::string& dir, absl::Span<float> m, absl::Span<float> v) {
  const std::string path = absl::StrCat(dir, "/", kAdamStateFile);
  STRATA_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(path));
  for (const auto& [key, span] : {std::pair{"m", m}, std::pair{"v", v}}) {
    const SafetensorsEntry* e = file.header().Find(key);
    if (e == nullptr || e->numel() != static_cast<int64_t>(span.size())) {
      return absl::DataLossError(absl::StrCat(path, ": tensor \"", key, "\" is missing or has ",
                                              e == nullptr ? 0 : e->numel(), " elements, expected ",
                                              span.size()));
    }
    STRATA_RETURN_IF_ERROR(file.ReadF32(*e, span.data()));
  }
  return absl::OkStatus();
}

}  // namespace strata
