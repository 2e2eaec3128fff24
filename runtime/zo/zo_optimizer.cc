// See zo_optimizer.h. Coefficients are computed in double from the recorded scalars and cast to
// fp32 once (CoefficientFor), in Step and Replay alike.
#include "runtime/zo/zo_optimizer.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"
#include "runtime/base/thread_pool.h"

namespace strata::zo {
float CoefficientFor(const ZoConfig& config, const ZoStepRecord& record, size_t i) {
  const double q = static_cast<double>(record.scalars.size());
  const double g = static_cast<double>(record.scalars[i]);
  const double direction = config.variant == ZoVariant::kSign ? (g > 0   ? 1.0
                                                                 : g < 0 ? -1.0
                                                                         : 0.0)
                                                              : g;
  return static_cast<float>(record.lr * direction / q);
}

namespace {

// The token embedding and the output head: perturbed on the fly, never copied.
bool IsLargeResident(const ParamLayout& layout, int id) {
  return id == layout.token_embedding_id() || id == layout.head_id();
}

}  // namespace

uint64_t StepSeed(uint64_t seed, int64_t step) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(step + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

absl::StatusOr<std::unique_ptr<ZoOptimizer>> ZoOptimizer::Create(Transformer* model,
                                                                 ZoConfig config) {
  if (!(config.eps > 0)) return absl::InvalidArgumentError("eps must be positive");
  if (config.num_perturbations < 1) {
    return absl::InvalidArgumentError("num_perturbations must be at least 1");
  }
  if (config.num_perturbations > 1 &&
      (config.variant == ZoVariant::kMomentum || config.variant == ZoVariant::kAdam)) {
    return absl::InvalidArgumentError(
        "num_perturbations > 1 is supported by the sgd and sign variants only");
  }
  if (config.sparse_quantile < 0 || config.sparse_quantile >= 1) {
    return absl::InvalidArgumentError("sparse_quantile must be in [0, 1)");
  }
  if (config.weight_decay < 0 || config.scalar_clip < 0) {
    return absl::InvalidArgumentError("weight_decay and scalar_clip must not be negative");
  }
  return std::unique_ptr<ZoOptimizer>(new ZoOptimizer(model, config));
}

ZoOptimizer::ZoOptimizer(Transformer* model, ZoConfig config)
    : model_(model),
      config_(config),
      resident_plus_(model->layout().NumElements()),
      resident_minus_(model->layout().NumElements()),
      block_plus_(model->layout().BlockElements()),
      block_minus_(model->layout().BlockElements()) {
  const ParamLayout& layout = model->layout();
  thresholds_.assign(layout.tensors().size(), kNoMask);
  if (config_.sparse_quantile > 0) {
    std::vector<float> mags;
    for (const TensorInfo& t : layout.tensors()) {
      const float* p = model->params().data() + t.offset;
      mags.resize(t.numel);
      for (int64_t i = 0; i < t.numel; ++i) mags[i] = std::fabs(p[i]);
      const int64_t k = std::min<int64_t>(
          t.numel - 1,
          static_cast<int64_t>(config_.sparse_quantile * static_cast<double>(t.numel)));
      std::nth_element(mags.begin(), mags.begin() + k, mags.end());
      thresholds_[t.id] = mags[k];
    }
  }
  if (config_.variant == ZoVariant::kMomentum || config_.variant == ZoVariant::kAdam) {
    m_.Resize(layout.NumElements());
  }
  if (config_.variant == ZoVariant::kAdam) v_.Resize(layout.NumElements());
  for (const TensorInfo& t : layout.tensors()) {
    if (t.block < 0) resident_ids_.push_back(t.id);
  }
  head_chunk_.Resize(std::min<int64_t>(layout.config().vocab_size, Transformer::kHeadChunkRows) *
                     layout.config().embed_dim());
}

int64_t ZoOptimizer::WorkingBytes(const ParamLayout& layout) {
  int64_t small = 0;
  for (const TensorInfo& t : layout.tensors()) {
    if (t.block < 0 && !IsLargeResident(layout, t.id)) small += t.numel;
  }
  const int64_t head_chunk =
      std::min<int64_t>(layout.config().vocab_size, Transformer::kHeadChunkRows) *
      layout.config().embed_dim();
  return static_cast<int64_t>(sizeof(float)) *
         (2 * small + head_chunk + 2 * layout.BlockElements());
}

ZoOptimizer::BlockStream ZoOptimizer::ArenaBlocks() {
  return [this](const BlockVisitor& fn) -> absl::Status {
    float* arena = model_->params().data();
    for (int l = 0; l < model_->layout().config().n_layer; ++l) {
      STRATA_RETURN_IF_ERROR(fn(l, arena + model_->layout().BlockBegin(l)).status());
    }
    return absl::OkStatus();
  };
}

void ZoOptimizer::UpdateTensorAt(const ZoStepRecord& record, int tensor_id, float* theta) {
  if (record.skipped) return;
  const TensorInfo& t = model_->layout().tensor(tensor_id);
  const float threshold = thresholds_[tensor_id];
  const float decay =
      RoleTakesWeightDecay(t.role)
          ? static_cast<float>(record.lr * static_cast<double>(config_.weight_decay))
          : 0.0f;
  const uint32_t id = static_cast<uint32_t>(tensor_id);
  switch (config_.variant) {
    case ZoVariant::kSgd:
    case ZoVariant::kSign:
      for (size_t i = 0; i < record.scalars.size(); ++i) {
        const NoiseKey key{record.seed, static_cast<uint32_t>(i), config_.distribution};
        UpdateSgd(theta, 0, t.numel, id, key, CoefficientFor(config_, record, i),
                  i == 0 ? decay : 0.0f, threshold);
      }
      break;
    case ZoVariant::kMomentum: {
      const NoiseKey key{record.seed, 0, config_.distribution};
      UpdateMomentum(theta, m_.data() + t.offset, 0, t.numel, id, key, record.scalars[0],
                     config_.momentum, static_cast<float>(record.lr), decay, threshold);
      break;
    }
    case ZoVariant::kAdam: {
      const NoiseKey key{record.seed, 0, config_.distribution};
      const double n = static_cast<double>(adam_updates_ + 1);
      const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(config_.beta1), n));
      const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(config_.beta2), n));
      UpdateAdam(theta, m_.data() + t.offset, v_.data() + t.offset, 0, t.numel, id, key,
                 record.scalars[0], config_.beta1, config_.beta2, config_.adam_eps, bc1, bc2,
                 static_cast<float>(record.lr), decay, threshold);
      break;
    }
  }
}

void ZoOptimizer::PerturbAt(int tensor_id, const NoiseKey& key, int64_t first, int64_t n,
                            const float* theta, float* plus, float* minus) const {
  Perturb(plus, minus, theta, first, n, static_cast<uint32_t>(tensor_id), key, config_.eps,
          thresholds_[tensor_id]);
}

void ZoOptimizer::PerturbMinusAt(int tensor_id, const NoiseKey& key, int64_t first, int64_t n,
                                 const float* theta, float* out) const {
  // theta + ((-eps) z) == theta - (eps z) exactly: negation is exact in IEEE arithmetic.
  Perturb(out, nullptr, theta, first, n, static_cast<uint32_t>(tensor_id), key, -config_.eps,
          thresholds_[tensor_id]);
}

void ZoOptimizer::PerturbTokenRows(const NoiseKey& key) {
  const ParamLayout& layout = model_->layout();
  const int id = layout.token_embedding_id();
  const int64_t C = layout.config().embed_dim();
  const float* wte = model_->params().data() + layout.tensor(id).offset;
  const int64_t rows = static_cast<int64_t>(used_tokens_.size());
  ParallelFor(rows, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const int64_t first = static_cast<int64_t>(used_tokens_[j]) * C;
      PerturbAt(id, key, first, C, wte + first, token_plus_.data() + j * C,
                config_.one_sided ? nullptr : token_minus_.data() + j * C);
    }
  });
}

void ZoOptimizer::FinishPendingUpdate() {
  if (config_.variant == ZoVariant::kAdam && !pending_->skipped) ++adam_updates_;
  pending_.reset();
}

void ZoOptimizer::Flush() {
  const absl::Status status = Flush(ArenaBlocks());
  (void)status;  // The arena's blocks cannot fail.
}

absl::Status ZoOptimizer::Flush(const BlockStream& blocks) {
  if (!pending_.has_value()) return absl::OkStatus();
  const ParamLayout& layout = model_->layout();
  float* arena = model_->params().data();
  for (int id : resident_ids_) UpdateTensorAt(*pending_, id, arena + layout.tensor(id).offset);
  STRATA_RETURN_IF_ERROR(blocks([&](int l, float* block) -> absl::StatusOr<bool> {
    for (int s = 0; s < layout.SlotsPerBlock(); ++s) {
      const int id = layout.BlockTensorId(l, s);
      UpdateTensorAt(*pending_, id, block + layout.tensor(id).offset - layout.BlockBegin(l));
    }
    return !pending_->skipped;
  }));
  FinishPendingUpdate();
  return absl::OkStatus();
}

absl::Status ZoOptimizer::Replay(const ZoStepRecord& record) {
  return Replay(record, ArenaBlocks());
}

absl::Status ZoOptimizer::Replay(const ZoStepRecord& record, const BlockStream& blocks) {
  if (pending_.has_value()) {
    return absl::FailedPreconditionError("Replay with a pending update: Flush first");
  }
  if (record.scalars.size() != static_cast<size_t>(config_.num_perturbations)) {
    return absl::InvalidArgumentError(absl::StrCat("step ", record.step, " has ",
                                                   record.scalars.size(), " scalars, expected ",
                                                   config_.num_perturbations));
  }
  pending_ = record;
  return Flush(blocks);
}

absl::StatusOr<ZoStepRecord> ZoOptimizer::Step(absl::Span<const int32_t> tokens,
                                               absl::Span<const int32_t> targets, int B, int T,
                                               int64_t step, double lr) {
  return Step(tokens, targets, B, T, step, lr, ArenaBlocks());
}

SgdUpdate ZoOptimizer::SgdUpdateOf(const ZoStepRecord& record) const {
  SgdUpdate update;
  update.seed = record.seed;
  update.distribution = config_.distribution;
  for (size_t i = 0; i < record.scalars.size(); ++i) {
    update.coefs.push_back(CoefficientFor(config_, record, i));
  }
  update.decay = static_cast<float>(record.lr * static_cast<double>(config_.weight_decay));
  return update;
}

absl::StatusOr<ZoStepRecord> ZoOptimizer::Step(absl::Span<const int32_t> tokens,
                                               absl::Span<const int32_t> targets, int B, int T,
                                               int64_t step, double lr, const BlockStream& blocks,
                                               BlockExecutor* executor) {
  if (executor != nullptr && config_.variant != ZoVariant::kSgd &&
      config_.variant != ZoVariant::kSign) {
    return absl::InvalidArgumentError("a block executor runs the sgd and sign variants only");
  }
  const ParamLayout& layout = model_->layout();
  const int64_t C = layout.config().embed_dim();  // Width of embedding and head rows.
  float* theta = model_->params().data();
  const int head_id = layout.head_id() >= 0 ? layout.head_id() : layout.token_embedding_id();
  const float* head = theta + layout.tensor(head_id).offset;
  // The batch's distinct tokens, and the tokens renumbered into that table.
  used_tokens_.assign(tokens.begin(), tokens.end());
  std::sort(used_tokens_.begin(), used_tokens_.end());
  used_tokens_.erase(std::unique(used_tokens_.begin(), used_tokens_.end()), used_tokens_.end());
  local_tokens_.resize(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    local_tokens_[i] =
        static_cast<int32_t>(std::lower_bound(used_tokens_.begin(), used_tokens_.end(), tokens[i]) -
                             used_tokens_.begin());
  }
  if (!used_tokens_.empty() &&
      (used_tokens_.front() < 0 || used_tokens_.back() >= layout.config().vocab_size)) {
    return absl::InvalidArgumentError(
        absl::StrCat("token id out of range [0, ", layout.config().vocab_size, ")"));
  }
  const int64_t table_floats = static_cast<int64_t>(used_tokens_.size()) * C;
  if (token_plus_.size() < table_floats) token_plus_.Resize(table_floats);
  if (!config_.one_sided && token_minus_.size() < table_floats) token_minus_.Resize(table_floats);

  ZoStepRecord record;
  record.step = step;
  record.seed = next_seed_.has_value() ? *next_seed_ : StepSeed(config_.seed, step);
  next_seed_.reset();
  record.lr = lr;
  double loss_sum = 0;
  bool finite = true;
  float minus = 0;  // L(theta - eps z_i), or the clean L(theta) when one-sided.
  for (int i = 0; i < config_.num_perturbations; ++i) {
    const NoiseKey key{record.seed, static_cast<uint32_t>(i), config_.distribution};
    const bool apply_pending = i == 0 && pending_.has_value();
    // Resident tensors: deferred update, then the perturbed copies of the small ones.
    for (int id : resident_ids_) {
      const TensorInfo& t = layout.tensor(id);
      if (apply_pending) UpdateTensorAt(*pending_, id, theta + t.offset);
      if (IsLargeResident(layout, id)) continue;
      PerturbAt(id, key, 0, t.numel, theta + t.offset, resident_plus_.data() + t.offset,
                config_.one_sided ? nullptr : resident_minus_.data() + t.offset);
    }
    PerturbTokenRows(key);
    // One-sided: the clean loss L(theta) is the same for every perturbation of the step.
    const bool second_stream = !config_.one_sided || i == 0;
    STRATA_RETURN_IF_ERROR(
        model_->BeginForward(resident_plus_.data(), local_tokens_, B, T, 0, token_plus_.data()));
    if (second_stream) {
      STRATA_RETURN_IF_ERROR(config_.one_sided
                                 ? model_->BeginForward(theta, tokens, B, T, 1)
                                 : model_->BeginForward(resident_minus_.data(), local_tokens_, B, T,
                                                        1, token_minus_.data()));
    }
    std::optional<SgdUpdate> update;
    if (executor != nullptr) {
      if (apply_pending && !pending_->skipped) update = SgdUpdateOf(*pending_);
      STRATA_RETURN_IF_ERROR(executor->Begin(
          model_->ResidualStream(0), second_stream ? model_->ResidualStream(1) : nullptr, B, T));
    }
    STRATA_RETURN_IF_ERROR(blocks([&](int l, float* block) -> absl::StatusOr<bool> {
      if (executor != nullptr) {
        STRATA_RETURN_IF_ERROR(executor->Block(l, block, update ? &*update : nullptr, key));
        return update.has_value();
      }
      const int64_t begin = layout.BlockBegin(l);
      for (int s = 0; s < layout.SlotsPerBlock(); ++s) {
        const int id = layout.BlockTensorId(l, s);
        const TensorInfo& t = layout.tensor(id);
        const int64_t rel = t.offset - begin;
        if (apply_pending) UpdateTensorAt(*pending_, id, block + rel);
        PerturbAt(id, key, 0, t.numel, block + rel, block_plus_.data() + rel,
                  config_.one_sided ? nullptr : block_minus_.data() + rel);
      }
      model_->BlockForward(l, block_plus_.data(), 0);
      if (second_stream) {
        model_->BlockForward(l, config_.one_sided ? block : block_minus_.data(), 1);
      }
      return apply_pending && !pending_->skipped;
    }));
    if (executor != nullptr) {
      STRATA_RETURN_IF_ERROR(executor->End(model_->ResidualStream(0),
                                           second_stream ? model_->ResidualStream(1) : nullptr));
    }
    if (apply_pending) FinishPendingUpdate();
    // The head, perturbed chunk by chunk as the loss consumes it.
    auto head_rows = [&](bool negative) -> Transformer::HeadRows {
      return [&, negative](int64_t row0, int64_t rows) -> const float* {
        const int64_t first = row0 * C, n = rows * C;
        if (negative) {
          PerturbMinusAt(head_id, key, first, n, head + first, head_chunk_.data());
        } else {
          PerturbAt(head_id, key, first, n, head + first, head_chunk_.data(), nullptr);
        }
        return head_chunk_.data();
      };
    };
    STRATA_ASSIGN_OR_RETURN(
        float plus, model_->EndForward(resident_plus_.data(), targets, 0, head_rows(false)));
    if (second_stream) {
      STRATA_ASSIGN_OR_RETURN(
          minus, config_.one_sided
                     ? model_->EndForward(theta, targets, 1)
                     : model_->EndForward(resident_minus_.data(), targets, 1, head_rows(true)));
    }
    finite = finite && std::isfinite(plus) && std::isfinite(minus);
    const double denom = config_.one_sided ? config_.eps : 2.0 * config_.eps;
    double g = (static_cast<double>(plus) - static_cast<double>(minus)) / denom;
    if (config_.scalar_clip > 0)
      g = std::clamp(g, -double{config_.scalar_clip}, double{config_.scalar_clip});
    record.scalars.push_back(static_cast<float>(g));
    loss_sum += 0.5 * (static_cast<double>(plus) + static_cast<double>(minus));
  }
  record.loss = static_cast<float>(loss_sum / config_.num_perturbations);
  if (!finite && config_.skip_nonfinite) {
    record.skipped = true;
    std::fill(record.scalars.begin(), record.scalars.end(), 0.0f);
  }
  pending_ = record;
  return record;
}

}  // namespace strata::zo
