// ZeRO stages 2-3 through Zero3: each block's gradient reduced as the backward produces it,
// only the rank's chunk kept; at stage 3 the weights partitioned too and gathered block by
// block for the forward and the backward (Zero3 is the WeightSource). Checkpoints: every rank
// its shard (weights, m, v) in zero3_shard.safetensors; no rank holds the whole model except
// around an export.
#ifndef STRATA_RUNTIME_TRAIN_ZERO3_UPDATE_H_
#define STRATA_RUNTIME_TRAIN_ZERO3_UPDATE_H_

#include <memory>

#include "runtime/dist/zero3.h"
#include "runtime/train/fo_update.h"

namespace strata {

class Zero3Update : public FoUpdate {
 public:
  // `stage` 2 (weights whole in the model's arena) or 3.
  Zero3Update(std::unique_ptr<Zero3> zero, int stage, bool bf16_compute)
      : zero_(std::move(zero)), stage_(stage), bf16_compute_(bf16_compute) {}
  void BeginStep(Transformer&) override {}  // Zero3 holds the gradients.
  Transformer::WeightSource* weight_source() override { return zero_.get(); }
  absl::StatusOr<double> Step(Transformer& model, float lr) override;
  absl::StatusOr<float> Loss(Transformer& model, absl::Span<const int32_t> tokens,
                             absl::Span<const int32_t> targets, int batch, int seq) override;
  absl::Status Save(const std::string& dir, Transformer& model, int rank) override;
  absl::Status Load(const std::string& dir, const std::string& rank0_dir, Transformer& model,
                    int64_t step) override;
  std::string Describe() const override;
  absl::Status GatherForExport(Transformer& model) override;
  void ExportDone(Transformer& model) override;

 private:
  std::unique_ptr<Zero3> zero_;
  int stage_;
  bool bf16_compute_;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_TRAIN_ZERO3_UPDATE_H_
