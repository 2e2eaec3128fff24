// See lr_schedule.h.
#include "runtime/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace strata {

absl::Status LrSchedule::Validate() const {
  if (!(lr >= 0) || !std::isfinite(lr)) {
    return absl::InvalidArgumentError(absl::StrCat("lr must be a finite number >= 0, got ", lr));
  }
  if (warmup_steps < 0) return absl::InvalidArgumentError("warmup_steps must not be negative");
  if (!(min_lr_ratio >= 0 && min_lr_ratio <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_lr_ratio must be in [0, 1], got ", min_lr_ratio));
  }
  if (total_steps <= 0) return absl::InvalidArgumentError("total_steps must be positive");
  return absl::OkStatus();
}

double LrSchedule::At(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps) {
    return lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  if (kind == Kind::kConstant) return lr;
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  const double p = std::clamp(static_cast<double>(step - warmup_steps) / span, 0.0, 1.0);
  const double min_lr = lr * min_lr_ratio;
  if (kind == Kind::kLinear) return min_lr + (lr - min_lr) * (1.0 - p);
  return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(M_PI * p));
}

}  // namespace strata
