// One process, AdamW state in memory: clip the model's gradients by their global norm, then
// AdamW over the whole arena. Checkpoints: the Hugging Face weights and adam_state.safetensors.
#ifndef STRATA_RUNTIME_TRAIN_LOCAL_ADAMW_UPDATE_H_
#define STRATA_RUNTIME_TRAIN_LOCAL_ADAMW_UPDATE_H_

#include "runtime/optim/adamw.h"
#include "runtime/train/fo_update.h"

namespace strata {

class LocalAdamWUpdate : public FoUpdate {
 public:
  LocalAdamWUpdate(const ParamLayout& layout, AdamWConfig config, double grad_clip)
      : adamw_(layout, config), grad_clip_(grad_clip) {}
  absl::StatusOr<double> Step(Transformer& model, float lr) override;
  absl::Status Save(const std::string& dir, Transformer& model, int rank) override;
  absl::Status Load(const std::string& dir, const std::string& rank0_dir, Transformer& model,
                    int64_t step) override;

 private:
  AdamW adamw_;
  double grad_clip_;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_TRAIN_LOCAL_ADAMW_UPDATE_H_
