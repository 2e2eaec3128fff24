// See adapter_adamw_update.h.
#include "runtime/train/adapter_adamw_update.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/base/status_macros.h"
#include "runtime/peft/peft_checkpoint.h"
#include "runtime/train/adam_state_files.h"

namespace strata {

AdapterAdamWUpdate::AdapterAdamWUpdate(Transformer& model, TrainableAdapters* adapters,
                                       Communicator* comm, AdamWConfig config, double grad_clip)
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

absl::StatusOr<double> AdapterAdamWUpdate::Step(Transformer&, float lr) {
  absl::Span<float> grads = adapters_->grads();
  double norm = 0;
  if (comm_ != nullptr && comm_->size() > 1) {
    STRATA_RETURN_IF_ERROR(comm_->AllReduceSum(grads));
    const float inverse = 1.0f / static_cast<float>(comm_->size());
    for (float& g : grads) g *= inverse;
    // Every rank holds the same averaged gradient, but ranks on different CPUs may sum its
    // squares to different last bits: they agree on the mean of their sums, so they clip alike.
    float sum_of_squares = static_cast<float>(SumOfSquares(grads));
    STRATA_RETURN_IF_ERROR(comm_->AllReduceSum(absl::MakeSpan(&sum_of_squares, 1)));
    norm = std::sqrt(static_cast<double>(sum_of_squares) / comm_->size());
    if (grad_clip_ > 0 && norm > grad_clip_) {
      const float scale = static_cast<float>(grad_clip_ / (norm + 1e-6));  // As ClipGradNorm.
      for (float& g : grads) g *= scale;
    }
  } else {
    norm = ClipGradNorm(grads, grad_clip_);
  }
  ++step_;
  adamw_update(adapters_->weights().data(), grads.data(), m_.data(), v_.data(),
               adapters_->NumElements(), lr, config_, step_);
  return norm;
}

absl::Status AdapterAdamWUpdate::Save(const std::string& dir, Transformer& model, int rank) {
  if (rank == 0) STRATA_RETURN_IF_ERROR(SaveAdapters(*adapters_, model.config(), dir));
  return WriteAdamState(dir, m_.span(), v_.span());
}

absl::Status AdapterAdamWUpdate::Load(const std::string& dir, const std::string& rank0_dir,
                                      Transformer& model, int64_t step) {
  STRATA_RETURN_IF_ERROR(LoadAdapterWeights(rank0_dir, model.layout(), *adapters_));
  STRATA_RETURN_IF_ERROR(ReadAdamState(dir, m_.span(), v_.span()));
  step_ = step;
  return absl::OkStatus();
}

std::string AdapterAdamWUpdate::Describe() const {
  return absl::StrCat(adapters_->Describe(), ", trained with AdamW over the frozen base");
}

absl::Status AdapterAdamWUpdate::Export(Transformer& model, const std::string& dir) {
  return SaveAdapters(*adapters_, model.config(), dir);
}

}  // namespace strata
