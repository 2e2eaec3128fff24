// See zo_adapters.h.
#include "runtime/peft/zo_adapters.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"
#include "runtime/zo/zo_kernels.h"

namespace strata {

absl::StatusOr<std::unique_ptr<ZoAdapters>> ZoAdapters::Create(
    Transformer* model, TrainableAdapters* adapters, zo::ZoConfig config,
    zo::ZoOptimizer::BlockStream blocks) {
  if (config.variant != zo::ZoVariant::kSgd && config.variant != zo::ZoVariant::kSign) {
    return absl::InvalidArgumentError("ZO with adapters runs the sgd and sign variants only");
  }
  if (config.sparse_quantile != 0) {
    return absl::InvalidArgumentError("ZO with adapters does not take sparse_quantile");
  }
  if (!(config.eps > 0) || config.num_perturbations < 1 || config.weight_decay < 0 ||
      config.scalar_clip < 0) {
    return absl::InvalidArgumentError(
        "eps must be positive, num_perturbations at least 1, weight_decay and scalar_clip not "
        "negative");
  }
  model->SetAdapters(adapters, /*base_frozen=*/true);
  if (blocks == nullptr) {
    blocks = [model](const zo::ZoOptimizer::BlockVisitor& fn) -> absl::Status {
      float* arena = model->params().data();
      for (int l = 0; l < model->config().n_layer; ++l) {
        STRATA_RETURN_IF_ERROR(fn(l, arena + model->layout().BlockBegin(l)).status());
      }
      return absl::OkStatus();
    };
  }
  return std::unique_ptr<ZoAdapters>(new ZoAdapters(model, adapters, config, std::move(blocks)));
}

ZoAdapters::ZoAdapters(Transformer* model, TrainableAdapters* adapters, zo::ZoConfig config,
                       zo::ZoOptimizer::BlockStream blocks)
    : model_(model), adapters_(adapters), config_(config), blocks_(std::move(blocks)) {
  plus_.Resize(adapters->NumElements());
  minus_.Resize(adapters->NumElements());
}

absl::StatusOr<zo::ZoStepRecord> ZoAdapters::Step(absl::Span<const int32_t> tokens,
                                                  absl::Span<const int32_t> targets, int B, int T,
                                                  int64_t step, double lr) {
  zo::ZoStepRecord record;
  record.step = step;
  record.seed = next_seed_.has_value() ? *next_seed_ : zo::StepSeed(config_.seed, step);
  next_seed_.reset();
  record.lr = lr;
  const float* theta = adapters_->weights().data();
  const float* base = model_->params().data();
  double loss_sum = 0;
  bool finite = true;
  float clean = 0;  // One-sided: L(theta), the same for every perturbation.
  for (int i = 0; i < config_.num_perturbations; ++i) {
    const zo::NoiseKey key{record.seed, static_cast<uint32_t>(i), config_.distribution};
    for (const TensorInfo& t : adapters_->tensors()) {
      zo::Perturb(plus_.data() + t.offset, config_.one_sided ? nullptr : minus_.data() + t.offset,
                  theta + t.offset, 0, t.numel, static_cast<uint32_t>(t.id), key, config_.eps,
                  zo::kNoMask);
    }
    // Both perturbed forwards over the same base blocks, one stream each.
    const bool second = !config_.one_sided || i == 0;
    adapters_->SetStreamWeights(0, plus_.data());
    adapters_->SetStreamWeights(1, config_.one_sided ? theta : minus_.data());
    absl::Status status = model_->BeginForward(base, tokens, B, T, 0);
    if (status.ok() && second) status = model_->BeginForward(base, tokens, B, T, 1);
    if (status.ok()) {
      status = blocks_([&](int l, float* block) -> absl::StatusOr<bool> {
        model_->BlockForward(l, block, 0);
        if (second) model_->BlockForward(l, block, 1);
        return false;  // The base is read only.
      });
    }
    absl::StatusOr<float> plus =
        status.ok() ? model_->EndForward(base, targets, 0) : absl::StatusOr<float>(status);
    absl::StatusOr<float> minus =
        plus.ok() && second ? model_->EndForward(base, targets, 1) : absl::StatusOr<float>(clean);
    adapters_->SetStreamWeights(0, nullptr);
    adapters_->SetStreamWeights(1, nullptr);
    if (!plus.ok()) return plus.status();
    if (!minus.ok()) return minus.status();
    if (config_.one_sided && i == 0) clean = *minus;
    finite = finite && std::isfinite(*plus) && std::isfinite(*minus);
    const double denom = config_.one_sided ? config_.eps : 2.0 * config_.eps;
    double g = (static_cast<double>(*plus) - static_cast<double>(*minus)) / denom;
    if (config_.scalar_clip > 0) {
      g = std::clamp(g, -double{config_.scalar_clip}, double{config_.scalar_clip});
    }
    record.scalars.push_back(static_cast<float>(g));
    loss_sum += 0.5 * (static_cast<double>(*plus) + static_cast<double>(*minus));
  }
  record.loss = static_cast<float>(loss_sum / config_.num_perturbations);
  if (!finite && config_.skip_nonfinite) {
    record.skipped = true;
    std::fill(record.scalars.begin(), record.scalars.end(), 0.0f);
  }
  Apply(record);
  return record;
}

void ZoAdapters::Apply(const zo::ZoStepRecord& record) {
  if (record.skipped) return;
  float* theta = adapters_->weights().data();
  const float decay = static_cast<float>(record.lr * static_cast<double>(config_.weight_decay));
  for (const TensorInfo& t : adapters_->tensors()) {
    for (size_t i = 0; i < record.scalars.size(); ++i) {
      const zo::NoiseKey key{record.seed, static_cast<uint32_t>(i), config_.distribution};
      zo::UpdateSgd(theta + t.offset, 0, t.numel, static_cast<uint32_t>(t.id), key,
                    zo::CoefficientFor(config_, record, i), i == 0 ? decay : 0.0f, zo::kNoMask);
    }
  }
}

absl::Status ZoAdapters::Replay(const zo::ZoStepRecord& record) {
  if (record.scalars.size() != static_cast<size_t>(config_.num_perturbations)) {
    return absl::InvalidArgumentError(absl::StrCat("step ", record.step, " has ",
                                                   record.scalars.size(), " scalars, expected ",
                                                   config_.num_perturbations));
  }
  Apply(record);
  return absl::OkStatus();
}

}  // namespace strata
