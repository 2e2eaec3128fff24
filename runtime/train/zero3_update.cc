// See zero3_update.h.
#include "runtime/train/zero3_update.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/base/status_macros.h"

namespace strata {
namespace {
constexpr char kShardFile[] = "zero3_shard.safetensors";
}  // namespace

absl::StatusOr<double> Zero3Update::Step(Transformer&, float lr) { return zero_->Step(lr); }

absl::StatusOr<float> Zero3Update::Loss(Transformer& model, absl::Span<const int32_t> tokens,
                                        absl::Span<const int32_t> targets, int batch, int seq) {
  return zero_->Loss(model, tokens, targets, batch, seq);
}

absl::Status Zero3Update::Save(const std::string& dir, Transformer&, int) {
  // Every rank its shard: weights, m and v; no rank holds the whole model.
  return zero_->SaveShard(absl::StrCat(dir, "/", kShardFile));
}

absl::Status Zero3Update::Load(const std::string& dir, const std::string&, Transformer&,
                               int64_t step) {
  STRATA_RETURN_IF_ERROR(zero_->LoadShard(absl::StrCat(dir, "/", kShardFile)));
  zero_->set_step(step);
  return absl::OkStatus();
}

std::string Zero3Update::Describe() const {
  return absl::StrFormat(
      "ZeRO stage %d: this rank's model state (weights, gradients, AdamW) is %.1f MB in "
      "memory and %.1f MB on NVMe (working set %.1f MB)%s",
      stage_, zero_->ResidentStateBytes() / 1e6, zero_->OffloadedStateBytes() / 1e6,
      zero_->WorkingBytes() / 1e6, bf16_compute_ ? "; forward and backward on a bf16 copy" : "");
}

absl::Status Zero3Update::GatherForExport(Transformer& model) {
  // The only time a stage-3 rank holds every weight (each rank takes part in the gathers).
  return zero_->GatherWeights(model.params());
}

void Zero3Update::ExportDone(Transformer& model) {
  if (stage_ == 3) model.ReleaseBlockWeights();
}

}  // namespace strata
