// First-order adapters (fo_update.h's family for a frozen base): AdamW over LoRA or prefix
// adapters only.
// The base computes no gradient of its own weights and holds no gradient memory; the backward
// runs through the adapters (Transformer::SetAdapters with base_frozen). With a communicator the
// adapters' gradients, and nothing else, are averaged over the ranks before clipping, so every
// rank applies the same update (data parallelism: only the adapters cross the network).
// Checkpoints: the adapters in PEFT's layout (rank 0) and adam_state.safetensors (every rank:
// the state is replicated). Exports are PEFT adapter directories.
#ifndef STRATA_RUNTIME_TRAIN_ADAPTER_ADAMW_UPDATE_H_
#define STRATA_RUNTIME_TRAIN_ADAPTER_ADAMW_UPDATE_H_

#include <cstdint>
#include <string>

#include "runtime/base/aligned_buffer.h"
#include "runtime/dist/communicator.h"
#include "runtime/optim/adamw.h"
#include "runtime/peft/trainable_adapters.h"
#include "runtime/train/fo_update.h"

namespace strata {

class AdapterAdamWUpdate : public FoUpdate {
 public:
  // Attaches `adapters` to `model` with the base frozen. Neither is owned; `comm` may be null.
  AdapterAdamWUpdate(Transformer& model, TrainableAdapters* adapters, Communicator* comm,
                     AdamWConfig config, double grad_clip);

  void BeginStep(Transformer&) override { adapters_->ZeroGrads(); }
  absl::StatusOr<double> Step(Transformer& model, float lr) override;
  absl::Status Save(const std::string& dir, Transformer& model, int rank) override;
  absl::Status Load(const std::string& dir, const std::string& rank0_dir, Transformer& model,
                    int64_t step) override;
  std::string Describe() const override;
  absl::Status Export(Transformer& model, const std::string& dir) override;

 private:
  TrainableAdapters* adapters_;
  Communicator* comm_;
  AdamWConfig config_;
  double grad_clip_;
  AlignedBuffer m_, v_;
  int64_t step_ = 0;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_TRAIN_ADAPTER_ADAMW_UPDATE_H_
