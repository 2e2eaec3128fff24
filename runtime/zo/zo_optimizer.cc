// See zo_optimizer.h. Coefficients are computed in double from the recorded scalars and cast to
// fp32 once (CoefficientFor), in Step and Replay alike.
#include "runtime/zo/zo_optimizer.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"

namespace strata::zo {
namespace {

// The fp32 multiplier of z in an SGD/sign update for perturbation i of a record.
float CoefficientFor(const ZoConfig& config, const ZoStepRecord& record, size_t i) {
  const double q = static_cast<double>(record.scalars.size());
  const double g = static_cast<double>(record.scalars[i]);
  const double direction = config.variant == ZoVariant::kSign ? (g > 0   ? 1.0
                                                                 : g < 0 ? -1.0
                                                                         : 0.0)
                                                              : g;
  return static_cast<float>(record.lr * direction / q);
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
}

void ZoOptimizer::UpdateTensor(const ZoStepRecord& record, int tensor_id) {
  UpdateTensorAt(record, tensor_id,
                 model_->params().data() + model_->layout().tensor(tensor_id).offset);
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

void ZoOptimizer::PerturbTensor(int tensor_id, const NoiseKey& key, float* plus, float* minus) {
  PerturbTensorAt(tensor_id, key,
                  model_->params().data() + model_->layout().tensor(tensor_id).offset, plus, minus);
}

void ZoOptimizer::PerturbTensorAt(int tensor_id, const NoiseKey& key, const float* theta,
                                  float* plus, float* minus) const {
  const TensorInfo& t = model_->layout().tensor(tensor_id);
  Perturb(plus, minus, theta, 0, t.numel, static_cast<uint32_t>(tensor_id), key, config_.eps,
          thresholds_[tensor_id]);
}

void ZoOptimizer::Flush() {
  if (!pending_.has_value()) return;
  for (const TensorInfo& t : model_->layout().tensors()) UpdateTensor(*pending_, t.id);
  if (config_.variant == ZoVariant::kAdam && !pending_->skipped) ++adam_updates_;
  pending_.reset();
}

absl::Status ZoOptimizer::Replay(const ZoStepRecord& record) {
  if (pending_.has_value()) {
    return absl::FailedPreconditionError("Replay with a pending update: Flush first");
  }
  if (record.scalars.size() != static_cast<size_t>(config_.num_perturbations)) {
    return absl::InvalidArgumentError(absl::StrCat("step ", record.step, " has ",
                                                   record.scalars.size(), " scalars, expected ",
                                                   config_.num_perturbations));
  }
  pending_ = record;
  Flush();
  return absl::OkStatus();
}

absl::StatusOr<ZoStepRecord> ZoOptimizer::Step(absl::Span<const int32_t> tokens,
                                               absl::Span<const int32_t> targets, int B, int T,
                                               int64_t step, double lr) {
  const ParamLayout& layout = model_->layout();
  const int L = layout.config().n_layer;
  const float* theta = model_->params().data();
  ZoStepRecord record;
  record.step = step;
  record.seed = StepSeed(config_.seed, step);
  record.lr = lr;
  double loss_sum = 0;
  bool finite = true;
  float minus = 0;  // L(theta - eps z_i), or the clean L(theta) when one-sided.
  for (int i = 0; i < config_.num_perturbations; ++i) {
    const NoiseKey key{record.seed, static_cast<uint32_t>(i), config_.distribution};
    const bool apply_pending = i == 0 && pending_.has_value();
    // Resident tensors: deferred update, then both perturbed copies.
    for (int id : resident_ids_) {
      if (apply_pending) UpdateTensor(*pending_, id);
      const int64_t off = layout.tensor(id).offset;
      PerturbTensor(id, key, resident_plus_.data() + off,
                    config_.one_sided ? nullptr : resident_minus_.data() + off);
    }
    const float* minus_resident = config_.one_sided ? theta : resident_minus_.data();
    // One-sided: the clean loss L(theta) is the same for every perturbation of the step.
    const bool second_stream = !config_.one_sided || i == 0;
    STRATA_RETURN_IF_ERROR(model_->BeginForward(resident_plus_.data(), tokens, B, T, 0));
    if (second_stream) {
      STRATA_RETURN_IF_ERROR(model_->BeginForward(minus_resident, tokens, B, T, 1));
    }
    for (int l = 0; l < L; ++l) {
      const int64_t begin = layout.BlockBegin(l);
      for (int s = 0; s < layout.SlotsPerBlock(); ++s) {
        const int id = layout.BlockTensorId(l, s);
        if (apply_pending) UpdateTensor(*pending_, id);
        const int64_t rel = layout.tensor(id).offset - begin;
        PerturbTensor(id, key, block_plus_.data() + rel,
                      config_.one_sided ? nullptr : block_minus_.data() + rel);
      }
      model_->BlockForward(l, block_plus_.data(), 0);
      if (second_stream) {
        model_->BlockForward(l, config_.one_sided ? theta + begin : block_minus_.data(), 1);
      }
    }
    if (apply_pending) {
      if (config_.variant == ZoVariant::kAdam && !pending_->skipped) ++adam_updates_;
      pending_.reset();
    }
    STRATA_ASSIGN_OR_RETURN(float plus, model_->EndForward(resident_plus_.data(), targets, 0));
    if (second_stream) {
      STRATA_ASSIGN_OR_RETURN(minus, model_->EndForward(minus_resident, targets, 1));
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
