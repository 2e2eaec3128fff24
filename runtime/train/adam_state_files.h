// AdamW state (m, v) in a checkpoint as `adam_state.safetensors`: the two 1-D fp32 tensors "m"
// and "v". Shared by the update families that keep the state in memory.
#ifndef STRATA_RUNTIME_TRAIN_ADAM_STATE_FILES_H_
#define STRATA_RUNTIME_TRAIN_ADAM_STATE_FILES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace strata {

inline constexpr char kAdamStateFile[] = "adam_state.safetensors";

absl::Status WriteAdamState(const std::string& dir, absl::Span<float> m, absl::Span<float> v);
// DATA_LOSS naming the file when a tensor is missing or has another size.
absl::Status ReadAdamState(const std::string& dir, absl::Span<float> m, absl::Span<float> v);

}  // namespace strata

#endif  // STRATA_RUNTIME_TRAIN_ADAM_STATE_FILES_H_
