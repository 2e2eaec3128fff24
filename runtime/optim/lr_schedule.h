// Learning-rate schedules shared by the first- and zeroth-order trainers, so a job's schedule
// means the same thing whichever optimizer runs it (docs/config.md, "optimizer.schedule"):
//
//   warm-up   step < warmup_steps:  lr * (step + 1) / warmup_steps
//   constant  lr
//   linear    min_lr + (lr - min_lr) * (1 - p)
//   cosine    min_lr + (lr - min_lr) * (1 + cos(pi p)) / 2
//
// where `step` is the 0-based index of the step being taken, p = (step - warmup_steps) /
// max(1, total_steps - warmup_steps) clamped to [0, 1], and min_lr = lr * min_lr_ratio.
#ifndef STRATA_RUNTIME_OPTIM_LR_SCHEDULE_H_
#define STRATA_RUNTIME_OPTIM_LR_SCHEDULE_H_

#include <cstdint>

#include "absl/status/status.h"

namespace strata {

struct LrSchedule {
  enum class Kind { kConstant, kLinear, kCosine };
  Kind kind = Kind::kConstant;
  double lr = 0;             // Peak learning rate (after warm-up).
  int64_t warmup_steps = 0;  // Linear warm-up from lr / warmup_steps.
  double min_lr_ratio = 0;   // Linear and cosine end at lr * min_lr_ratio.
  int64_t total_steps = 0;   // The step count the decay spans.

  // OK, or INVALID_ARGUMENT naming the bad member.
  absl::Status Validate() const;
  // The learning rate of the step with 0-based index `step`.
  double At(int64_t step) const;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_OPTIM_LR_SCHEDULE_H_
