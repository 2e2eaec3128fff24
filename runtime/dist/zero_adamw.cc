// See zero_adamw.h.
#include "runtime/dist/zero_adamw.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace strata {
namespace {

// Sum of squares of x in double, in a fixed order (4096-element chunks).
double SquaredSum(const float* x, int64_t n) {
  double total = 0;
  for (int64_t i = 0; i < n; i += 4096) {
    double chunk = 0;
    const int64_t end = std::min(n, i + 4096);
    for (int64_t k = i; k < end; ++k) chunk += static_cast<double>(x[k]) * x[k];
    total += chunk;
  }
  return total;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ZeroAdamW>> ZeroAdamW::Create(const ParamLayout& layout,
                                                             Communicator* comm, Options options) {
  if (options.stage < 0 || options.stage > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("zero.stage ", options.stage, " is not supported here (0, 1 or 2)"));
  }
  if (comm == nullptr) return absl::InvalidArgumentError("a communicator is required");
  return std::unique_ptr<ZeroAdamW>(new ZeroAdamW(layout, comm, options));
}

ZeroAdamW::ZeroAdamW(const ParamLayout& layout, Communicator* comm, Options options)
    : layout_(layout), comm_(comm), options_(options) {
  const int64_t n = layout.NumElements();
  const int w = comm->size();
  part_ = (n + w - 1) / w;
  begin_ = std::min(n, comm->rank() * part_);
  end_ = std::min(n, begin_ + part_);
  if (options_.stage == 0) {
    m_.Resize(n);
    v_.Resize(n);
  } else {
    m_.Resize(part_);
    v_.Resize(part_);
    scratch_.Resize(part_ * w);
  }
}

int64_t ZeroAdamW::OptimizerStateBytes() const {
  return static_cast<int64_t>(sizeof(float)) * (m_.size() + v_.size());
}

void ZeroAdamW::UpdateRange(float* params, const float* grads, int64_t begin, int64_t end, float lr,
                            int64_t state0) {
  AdamWConfig no_decay = options_.adam;
  no_decay.weight_decay = 0.0f;
  for (const TensorInfo& t : layout_.tensors()) {
    const int64_t lo = std::max(begin, t.offset), hi = std::min(end, t.offset + t.numel);
    if (lo >= hi) continue;
    adamw_update(params + lo, grads + lo, m_.data() + (lo - state0), v_.data() + (lo - state0),
                 hi - lo, lr, RoleTakesWeightDecay(t.role) ? options_.adam : no_decay, step_);
  }
}

absl::StatusOr<double> ZeroAdamW::Step(absl::Span<float> params, absl::Span<float> grads,
                                       float lr) {
  const int64_t n = layout_.NumElements();
  const int w = comm_->size(), rank = comm_->rank();
  if (static_cast<int64_t>(params.size()) != n || static_cast<int64_t>(grads.size()) != n) {
    return absl::InvalidArgumentError("params and grads must cover the whole arena");
  }
  ++step_;
  const float inv = 1.0f / static_cast<float>(w);
  // 1. Average the gradients (stage 2: only this rank's partition is needed).
  if (options_.stage < 2) {
    if (absl::Status s = comm_->AllReduceSum(grads); !s.ok()) return s;
    for (int64_t i = 0; i < n; ++i) grads[i] *= inv;
  } else {
    std::vector<float> padded(part_ * w, 0.0f);
    std::memcpy(padded.data(), grads.data(), n * sizeof(float));
    std::vector<float> mine(part_);
    if (absl::Status s = comm_->ReduceScatterSum(padded, absl::MakeSpan(mine)); !s.ok()) return s;
    for (int64_t i = begin_; i < end_; ++i) grads[i] = mine[i - begin_] * inv;
  }
  // 2. Global norm: partition by partition in rank order, whatever the stage.
  std::vector<float> partials(2 * w);
  if (options_.stage < 2) {
    for (int r = 0; r < w; ++r) {
      const int64_t b = std::min(n, r * part_), e = std::min(n, b + part_);
      const double sq = SquaredSum(grads.data() + b, e - b);
      partials[2 * r] = static_cast<float>(sq);
      partials[2 * r + 1] = static_cast<float>(sq - static_cast<double>(partials[2 * r]));
    }
  } else {
    const double sq = SquaredSum(grads.data() + begin_, end_ - begin_);
    const float mine[2] = {static_cast<float>(sq),
                           static_cast<float>(sq - static_cast<double>(static_cast<float>(sq)))};
    if (absl::Status s = comm_->AllGather(absl::MakeConstSpan(mine, 2), absl::MakeSpan(partials));
        !s.ok()) {
      return s;
    }
  }
  double total = 0;
  for (int r = 0; r < w; ++r) {
    total += static_cast<double>(partials[2 * r]) + static_cast<double>(partials[2 * r + 1]);
  }
  const double norm = std::sqrt(total);
  const int64_t clip_begin = options_.stage == 0 ? 0 : begin_;
  const int64_t clip_end = options_.stage == 0 ? n : end_;
  if (options_.grad_clip > 0 && norm > options_.grad_clip) {
    const float scale = static_cast<float>(options_.grad_clip / (norm + 1e-6));
    for (int64_t i = clip_begin; i < clip_end; ++i) grads[i] *= scale;
  }
  // 3. AdamW: everything (stage 0) or this rank's partition, then gather the partitions.
  if (options_.stage == 0) {
    UpdateRange(params.data(), grads.data(), 0, n, lr, 0);
    return norm;
  }
  UpdateRange(params.data(), grads.data(), begin_, end_, lr, begin_);
  std::vector<float> mine(part_, 0.0f);
  std::memcpy(mine.data(), params.data() + begin_, (end_ - begin_) * sizeof(float));
  if (absl::Status s = comm_->AllGather(mine, scratch_.span()); !s.ok()) return s;
  std::memcpy(params.data(), scratch_.data(), n * sizeof(float));
  (void)rank;
  return norm;
}

}  // namespace strata
