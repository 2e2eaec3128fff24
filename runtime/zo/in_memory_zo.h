// InMemoryZo: the ZoEngine over the model's own arena (every weight in memory).
#ifndef STRATA_RUNTIME_ZO_IN_MEMORY_ZO_H_
#define STRATA_RUNTIME_ZO_IN_MEMORY_ZO_H_

#include <memory>

#include "runtime/model/transformer.h"
#include "runtime/zo/zo_engine.h"

namespace strata::zo {

class InMemoryZo : public ZoEngine {
 public:
  // `model` must outlive the engine.
  InMemoryZo(Transformer* model, std::unique_ptr<ZoOptimizer> optimizer)
      : model_(model), optimizer_(std::move(optimizer)) {}

  absl::StatusOr<ZoStepRecord> Step(absl::Span<const int32_t> tokens,
                                    absl::Span<const int32_t> targets, int B, int T, int64_t step,
                                    double lr) override {
    return optimizer_->Step(tokens, targets, B, T, step, lr);
  }
  absl::Status Replay(const ZoStepRecord& record) override { return optimizer_->Replay(record); }
  absl::Status Flush() override {
    optimizer_->Flush();
    return absl::OkStatus();
  }
  absl::StatusOr<float> Loss(absl::Span<const int32_t> tokens, absl::Span<const int32_t> targets,
                             int B, int T) override {
    return model_->Loss(tokens, targets, B, T);
  }
  ZoOptimizer* arithmetic() override { return optimizer_.get(); }

 private:
  Transformer* model_;
  std::unique_ptr<ZoOptimizer> optimizer_;
};

}  // namespace strata::zo

#endif  // STRATA_RUNTIME_ZO_IN_MEMORY_ZO_H_
