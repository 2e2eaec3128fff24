// See zero_adamw_update.h.
#include "runtime/train/zero_adamw_update.h"

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/train/adam_state_files.h"

namespace strata {
namespace {
constexpr char kStreamedStateFile[] = "adam_state.bin";
}  // namespace

absl::StatusOr<double> ZeroAdamWUpdate::Step(Transformer& model, float lr) {
  return zero_->Step(model.params(), model.grads(), lr);
}

absl::Status ZeroAdamWUpdate::Save(const std::string& dir, Transformer& model, int rank) {
  if (rank == 0) STRATA_RETURN_IF_ERROR(SaveHfCheckpoint(model, dir));
  if (zero_->state_offloaded()) {
    // Streamed from NVMe one sub-group at a time: the state never occupies RAM.
    return zero_->ExportState(absl::StrCat(dir, "/", kStreamedStateFile));
  }
  return WriteAdamState(dir, zero_->m(), zero_->v());
}

absl::Status ZeroAdamWUpdate::Load(const std::string& dir, const std::string& rank0_dir,
                                   Transformer& model, int64_t step) {
  // Weights from rank 0's checkpoint (the same on every rank).
  STRATA_RETURN_IF_ERROR(LoadHfWeights(rank0_dir, model));
  if (zero_->state_offloaded()) {
    STRATA_RETURN_IF_ERROR(zero_->ImportState(absl::StrCat(dir, "/", kStreamedStateFile)));
  } else {
    STRATA_RETURN_IF_ERROR(ReadAdamState(dir, zero_->m(), zero_->v()));
  }
  zero_->set_step(step);
  return absl::OkStatus();
}

}  // namespace strata
