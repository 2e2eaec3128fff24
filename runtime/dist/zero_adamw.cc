// See zero_adamw.h.
#include "runtime/dist/zero_adamw.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/dist/subgroup_stream.h"

namespace strata {
absl::StatusOr<std::unique_ptr<ZeroAdamW>> ZeroAdamW::Create(const ParamLayout& layout,
                                                             Communicator* comm, Options options) {
  if (options.stage < 0 || options.stage > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "zero.stage ", options.stage, " is not supported here (0 or 1; stages 2-3 are Zero3)"));
  }
  if (options.subgroup_elements < 1024) {
    return absl::InvalidArgumentError("subgroup_elements must be at least 1024");
  }
  std::unique_ptr<ZeroAdamW> zero(new ZeroAdamW(layout, comm, options));
  if (!options.state_nvme_paths.empty()) {
    const bool whole = options.stage == 0;
    if (absl::Status s =
            zero->InitOffload(whole ? 0 : zero->begin_, whole ? layout.NumElements() : zero->end_);
        !s.ok()) {
      return s;
    }
  }
  return zero;
}

ZeroAdamW::ZeroAdamW(const ParamLayout& layout, Communicator* comm, Options options)
    : layout_(layout), comm_(comm), options_(options) {
  const int64_t n = layout.NumElements();
  const int w = comm != nullptr ? comm->size() : 1;
  part_ = (n + w - 1) / w;
  begin_ = std::min(n, (comm != nullptr ? comm->rank() : 0) * part_);
  end_ = std::min(n, begin_ + part_);
  if (options_.state_nvme_paths.empty()) {  // Otherwise the state lives on NVMe.
    const int64_t state = options_.stage == 0 ? n : part_;
    m_.Resize(state);
    v_.Resize(state);
  }
  if (options_.stage > 0) {
    scratch_.Resize(part_ * w);
    partition_.Resize(part_);
  }
}

int64_t ZeroAdamW::OptimizerStateBytes() const {
  if (slab_ != nullptr) return slab_->slot_bytes() * slab_->slots();
  return static_cast<int64_t>(sizeof(float)) * (m_.size() + v_.size());
}

absl::Status ZeroAdamW::InitOffload(int64_t begin, int64_t end) {
  const int64_t sub = options_.subgroup_elements;
  const int64_t groups = (end - begin + sub - 1) / sub;
  std::vector<int64_t> extents;
  for (int64_t g = 0; g < groups; ++g) {
    extents.push_back(8 * (std::min(end, begin + (g + 1) * sub) - (begin + g * sub)));
  }
  absl::StatusOr<std::unique_ptr<IoEngine>> engine = CreateIoEngine(options_.io);
  if (!engine.ok()) return engine.status();
  engine_ = *std::move(engine);
  TensorStore::Options store_options;
  store_options.paths = options_.state_nvme_paths;
  store_options.name = "adam-state";
  store_options.rank = comm_ != nullptr ? comm_->rank() : 0;
  store_options.engine = engine_.get();
  absl::StatusOr<std::unique_ptr<TensorStore>> store = TensorStore::Create(store_options, extents);
  if (!store.ok()) return store.status();
  store_ = *std::move(store);
  PinnedSlab::Options slab_options;
  slab_options.slot_bytes = TensorStore::Padded(8 * sub);
  slab_options.slots = 3;
  slab_options.lock = false;
  slab_options.engine = engine_.get();
  absl::StatusOr<std::unique_ptr<PinnedSlab>> slab = PinnedSlab::Create(slab_options);
  if (!slab.ok()) return slab.status();
  slab_ = *std::move(slab);
  // Zero state on NVMe.
  std::memset(slab_->slot(0), 0, slab_->slot_bytes());
  for (int g = 0; g < groups; ++g) {
    if (absl::Status s = WriteExtent(*store_, g, slab_->slot(0)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ZeroAdamW::UpdateOffloaded(float* params, const float* grads, int64_t begin,
                                        int64_t end, float lr) {
  const int64_t sub = options_.subgroup_elements;
  SubgroupStreamBytes bytes;
  absl::Status status = StreamSubgroups(
      *store_, *slab_, store_->extents(), [](int g) { return std::vector<int>{g}; },
      [&](int g, const std::vector<char*>& slots) {
        const int64_t lo = begin + g * sub, hi = std::min(end, lo + sub);
        float* m = reinterpret_cast<float*>(slots[0]);
        UpdateRange(params, grads, lo, hi, lr, m, m + (hi - lo), lo);
      },
      &bytes);
  bytes_read_ += bytes.read;
  bytes_written_ += bytes.written;
  return status;
}

absl::Status ZeroAdamW::ExportState(const std::string& path) {
  if (store_ == nullptr) return absl::FailedPreconditionError("the optimizer state is in memory");
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  for (int g = 0; g < store_->extents(); ++g) {
    if (absl::Status s = ReadExtent(*store_, g, slab_->slot(0)); !s.ok()) return s;
    out.write(slab_->slot(0), store_->extent_bytes(g));
  }
  out.flush();
  if (!out) return absl::DataLossError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::Status ZeroAdamW::ImportState(const std::string& path) {
  if (store_ == nullptr) return absl::FailedPreconditionError("the optimizer state is in memory");
  std::ifstream in(path, std::ios::binary);
  for (int g = 0; g < store_->extents(); ++g) {
    if (!in.read(slab_->slot(0), store_->extent_bytes(g))) {
      return absl::DataLossError(
          absl::StrCat(path, ": ends in sub-group ", g, " of ", store_->extents()));
    }
    if (absl::Status s = WriteExtent(*store_, g, slab_->slot(0)); !s.ok()) return s;
  }
  if (in.peek() != EOF) return absl::DataLossError(absl::StrCat(path, ": longer than the state"));
  return absl::OkStatus();
}

void ZeroAdamW::UpdateRange(float* params, const float* grads, int64_t begin, int64_t end, float lr,
                            float* m, float* v, int64_t state0) {
  AdamWOverRange(layout_, options_.adam, begin, end, params + begin, grads + begin,
                 m + (begin - state0), v + (begin - state0), lr, step_);
}

absl::StatusOr<double> ZeroAdamW::Step(absl::Span<float> params, absl::Span<float> grads,
                                       float lr) {
  const int64_t n = layout_.NumElements();
  const int w = comm_ != nullptr ? comm_->size() : 1;
  if (static_cast<int64_t>(params.size()) != n || static_cast<int64_t>(grads.size()) != n) {
    return absl::InvalidArgumentError("params and grads must cover the whole arena");
  }
  ++step_;
  const float inv = 1.0f / static_cast<float>(w);
  // 1. Average the gradients.
  if (w > 1) {
    if (absl::Status s = comm_->AllReduceSum(grads); !s.ok()) return s;
    for (int64_t i = 0; i < n; ++i) grads[i] *= inv;
  }
  // 2. Global norm: each rank sums its partition and the partials are all-gathered, so every
  // rank (whatever its CPU) and every stage uses the same partials, in rank order.
  std::vector<float> partials(2 * w);
  if (w == 1) {
    const double sq = SumOfSquares(grads);
    partials[0] = static_cast<float>(sq);
    partials[1] = static_cast<float>(sq - static_cast<double>(partials[0]));
  } else {
    const double sq = SumOfSquares(grads.subspan(begin_, end_ - begin_));
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
  const int64_t update_begin = options_.stage == 0 ? 0 : begin_;
  const int64_t update_end = options_.stage == 0 ? n : end_;
  if (store_ != nullptr) {
    if (absl::Status s = UpdateOffloaded(params.data(), grads.data(), update_begin, update_end, lr);
        !s.ok()) {
      return s;
    }
  } else {
    UpdateRange(params.data(), grads.data(), update_begin, update_end, lr, m_.data(), v_.data(),
                update_begin);
  }
  if (options_.stage == 0 || w == 1) return norm;
  // The last rank's partition may be short: its padding in partition_ stays zero.
  std::memcpy(partition_.data(), params.data() + begin_, (end_ - begin_) * sizeof(float));
  if (absl::Status s = comm_->AllGather(partition_.span(), scratch_.span()); !s.ok()) return s;
  std::memcpy(params.data(), scratch_.data(), n * sizeof(float));
  return norm;
}

}  // namespace strata
