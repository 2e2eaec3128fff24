// See lora_adamw_update.h.
#include "runtime/train/lora_adamw_update.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/base/status_macros.h"
#include "runtime/peft/peft_checkpoint.h"
#include "runtime/train/adam_state_files.h"

namespace strata {

LoraAdamWUpdate::LoraAdamWUpdate(Transformer& model, LoraAdapters* adapters, Communicator* comm,
                                 AdamWConfig config, double grad_clip)
    : adapters_(adapters),
      comm_(comm),
      config_(config),
      grad_clip_(grad_clip),
      m_(adapters->NumElements()),
      v_(adapters->NumElements()) {
  model.SetAdapters(adapters, /*base_frozen=*/true);
  std::fill(m_.span().begin(), m_.span().end(), 0.0f);
  std::fill(v_.span().begin(), v_.span().end(), 0.0f);
}

absl::StatusOr<double> LoraAdamWUpdate::Step(Transformer&, float lr) {
  absl::Span<float> grads = adapters_->grads();
  if (comm_ != nullptr && comm_->size() > 1) {
    STRATA_RETURN_IF_ERROR(comm_->AllReduceSum(grads));
    const float inverse = 1.0f / static_cast<float>(comm_->size());
    for (float& g : grads) g *= inverse;
  }
  const double norm = ClipGradNorm(grads, grad_clip_);
  ++step_;
  adamw_update(adapters_->weights().data(), grads.data(), m_.data(), v_.data(),
               adapters_->NumElements(), lr, config_, step_);
  return norm;
}

absl::Status LoraAdamWUpdate::Save(const std::string& dir, Transformer& model, int rank) {
  if (rank == 0) STRATA_RETURN_IF_ERROR(SaveLoraAdapter(*adapters_, model.config(), dir));
  return WriteAdamState(dir, m_.span(), v_.span());
}

absl::Status LoraAdamWUpdate::Load(const std::string& dir, const std::string& rank0_dir,
                                   Transformer& model, int64_t step) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<LoraAdapters> saved,
                          LoadLoraAdapter(rank0_dir, model.layout()));
  if (saved->tensors().size() != adapters_->tensors().size() ||
      saved->NumElements() != adapters_->NumElements()) {
    return absl::DataLossError(
        absl::StrCat(rank0_dir, ": its adapters are not the ones this run trains"));
  }
  std::copy(saved->weights().begin(), saved->weights().end(), adapters_->weights().begin());
  STRATA_RETURN_IF_ERROR(ReadAdamState(dir, m_.span(), v_.span()));
  step_ = step;
  return absl::OkStatus();
}

std::string LoraAdamWUpdate::Describe() const {
  return absl::StrFormat("LoRA r=%d alpha=%g: AdamW over %d adapter parameters, base frozen",
                         adapters_->config().r, adapters_->config().alpha,
                         adapters_->NumElements());
}

absl::Status LoraAdamWUpdate::Export(Transformer& model, const std::string& dir) {
  return SaveLoraAdapter(*adapters_, model.config(), dir);
}

}  // namespace strata
