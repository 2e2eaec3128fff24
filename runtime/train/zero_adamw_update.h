// ZeRO stages 0-1 through ZeroAdamW: gradients all-reduced (or reduced to their owner), the
// AdamW state replicated (stage 0) or partitioned (stage 1), in memory or streamed from NVMe
// in sub-groups; the weights whole on every rank. Checkpoints: rank 0's Hugging Face weights,
// every rank its state (adam_state.safetensors, or adam_state.bin streamed from NVMe).
#ifndef STRATA_RUNTIME_TRAIN_ZERO_ADAMW_UPDATE_H_
#define STRATA_RUNTIME_TRAIN_ZERO_ADAMW_UPDATE_H_

#include <memory>

#include "runtime/dist/zero_adamw.h"
#include "runtime/train/fo_update.h"

namespace strata {

class ZeroAdamWUpdate : public FoUpdate {
 public:
  explicit ZeroAdamWUpdate(std::unique_ptr<ZeroAdamW> zero) : zero_(std::move(zero)) {}
  absl::StatusOr<double> Step(Transformer& model, float lr) override;
  absl::Status Save(const std::string& dir, Transformer& model, int rank) override;
  absl::Status Load(const std::string& dir, const std::string& rank0_dir, Transformer& model,
                    int64_t step) override;

 private:
  std::unique_ptr<ZeroAdamW> zero_;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_TRAIN_ZERO_ADAMW_UPDATE_H_
