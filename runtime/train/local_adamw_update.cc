// See local_adamw_update.h.
#include "runtime/train/local_adamw_update.h"

#include "runtime/base/status_macros.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/train/adam_state_files.h"

namespace strata {

absl::StatusOr<double> LocalAdamWUpdate::Step(Transformer& model, float lr) {
  const double norm = ClipGradNorm(model.grads(), grad_clip_);
  adamw_.Step(model.params(), model.grads(), lr);
  return norm;
}

absl::Status LocalAdamWUpdate::Save(const std::string& dir, Transformer& model, int rank) {
  if (rank == 0) STRATA_RETURN_IF_ERROR(SaveHfCheckpoint(model, dir));
  return WriteAdamState(dir, adamw_.m(), adamw_.v());
}

absl::Status LocalAdamWUpdate::Load(const std::string& dir, const std::string& rank0_dir,
                                    Transformer& model, int64_t step) {
  STRATA_RETURN_IF_ERROR(LoadHfWeights(rank0_dir, model));
  STRATA_RETURN_IF_ERROR(ReadAdamState(dir, adamw_.m(), adamw_.v()));
  adamw_.set_step(step);
  return absl::OkStatus();
}

}  // namespace strata
