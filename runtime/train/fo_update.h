// FoUpdate: how the first-order trainer turns a step's gradients into new weights, and keeps
// and restores that state across checkpoints. One implementation per stage family, each in a
// file named after what it does:
//   local_adamw_update   one process, AdamW state in memory
//   zero_adamw_update    ZeRO stages 0-1 (ZeroAdamW): replicated or partitioned AdamW state,
//                        in memory or streamed from NVMe, one process or several
//   zero3_update         ZeRO stages 2-3 (Zero3): gradients (and at stage 3 the weights)
//                        partitioned block by block
//   adapter_adamw_update LoRA or prefix adapters only over a frozen base, one process or several
// FoTrainer::Create picks one from its options and never asks which it has.
#ifndef STRATA_RUNTIME_TRAIN_FO_UPDATE_H_
#define STRATA_RUNTIME_TRAIN_FO_UPDATE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/model/transformer.h"

namespace strata {

class FoUpdate {
 public:
  virtual ~FoUpdate() = default;

  // Before the forward and backward of a step: gradients ready to accumulate into.
  virtual void BeginStep(Transformer& model) { model.ZeroGrads(); }
  // Where the forward and backward read weights and hand gradients (null: the model's arena).
  virtual Transformer::WeightSource* weight_source() { return nullptr; }
  // After the backward: reduces, clips and applies AdamW at `lr`. The global gradient norm.
  virtual absl::StatusOr<double> Step(Transformer& model, float lr) = 0;
  // Mean loss of a batch with the current weights (evaluation).
  virtual absl::StatusOr<float> Loss(Transformer& model, absl::Span<const int32_t> tokens,
                                     absl::Span<const int32_t> targets, int batch, int seq) {
    return model.Loss(tokens, targets, batch, seq);
  }
  // Writes this rank's part of a checkpoint (weights and optimizer state) into `dir`.
  virtual absl::Status Save(const std::string& dir, Transformer& model, int rank) = 0;
  // Restores from this rank's checkpoint `dir` (`rank0_dir`: rank 0's of the same step, which
  // holds the weights when they are not partitioned), positioned after `step` steps.
  virtual absl::Status Load(const std::string& dir, const std::string& rank0_dir,
                            Transformer& model, int64_t step) = 0;
  // A line describing where the state lives, for the log ("" when there is nothing to say).
  virtual std::string Describe() const { return ""; }
  // Makes the model's arena hold every weight (before an export) and gives it back afterwards.
  virtual absl::Status GatherForExport(Transformer&) { return absl::OkStatus(); }
  virtual void ExportDone(Transformer&) {}
  // Writes what the run trained to `dir` (rank 0, between GatherForExport and ExportDone): a
  // Hugging Face checkpoint of the model, or what the family trains instead.
  virtual absl::Status Export(Transformer& model, const std::string& dir) {
    return SaveHfCheckpoint(model, dir);
  }
};

}  // namespace strata

#endif  // STRATA_RUNTIME_TRAIN_FO_UPDATE_H_
