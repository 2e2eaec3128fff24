// Zeroth-order training of adapters over a frozen base (MeZO's ZO-LoRA and ZO-prefix): each step
// perturbs only the adapters, theta +- eps z with z drawn per adapter tensor from the step's
// seed (the same noise streams and records as full ZO, runtime/zo), runs the two perturbed
// forwards side by side over the unchanged base weights, and updates the adapters with the
// projected gradient. Records replay bit for bit; the sgd and sign variants are supported.
// The base's blocks come from the model's arena or, offloaded, from a read-only block stream
// (OffloadedZo streams them from NVMe or pinned host memory and never writes one back).
#ifndef STRATA_RUNTIME_PEFT_ZO_ADAPTERS_H_
#define STRATA_RUNTIME_PEFT_ZO_ADAPTERS_H_

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/base/aligned_buffer.h"
#include "runtime/model/transformer.h"
#include "runtime/peft/trainable_adapters.h"
#include "runtime/zo/zo_engine.h"
#include "runtime/zo/zo_optimizer.h"

namespace strata {

class ZoAdapters final : public zo::ZoEngine {
 public:
  // `model` and `adapters` must outlive this; the adapters are attached to the model (base
  // frozen). `blocks`, when given, supplies the base's blocks in order (its visitor never
  // changes one); otherwise they are the model's arena. Refuses ZO settings it does not
  // implement, naming them.
  static absl::StatusOr<std::unique_ptr<ZoAdapters>> Create(
      Transformer* model, TrainableAdapters* adapters, zo::ZoConfig config,
      zo::ZoOptimizer::BlockStream blocks = nullptr);

  // One step on (tokens, targets) of shape (B, T); `step` is 1-based. The update is applied
  // before it returns.
  absl::StatusOr<zo::ZoStepRecord> Step(absl::Span<const int32_t> tokens,
                                        absl::Span<const int32_t> targets, int B, int T,
                                        int64_t step, double lr) override;
  // The next Step perturbs with `seed` (federated rounds draw seeds from a candidate list).
  void SetNextSeed(uint64_t seed) { next_seed_ = seed; }
  // Applies a recorded step to the adapters.
  absl::Status Replay(const zo::ZoStepRecord& record) override;
  // Nothing is ever pending: Step applies its update.
  absl::Status Flush() override { return absl::OkStatus(); }
  absl::StatusOr<float> Loss(absl::Span<const int32_t> tokens, absl::Span<const int32_t> targets,
                             int B, int T) override {
    return model_->Loss(tokens, targets, B, T);
  }
  // The perturbed adapter copies (two adapter arenas).
  static int64_t WorkingBytes(const TrainableAdapters& adapters) {
    return 2 * adapters.NumElements() * static_cast<int64_t>(sizeof(float));
  }
  // The adapters carry no per-tensor state beyond their weights.
  zo::ZoOptimizer* arithmetic() override { return nullptr; }
  TrainableAdapters& adapters() { return *adapters_; }

 private:
  ZoAdapters(Transformer* model, TrainableAdapters* adapters, zo::ZoConfig config,
             zo::ZoOptimizer::BlockStream blocks);
  void Apply(const zo::ZoStepRecord& record);

  Transformer* model_;
  TrainableAdapters* adapters_;
  zo::ZoConfig config_;
  zo::ZoOptimizer::BlockStream blocks_;
  std::optional<uint64_t> next_seed_;
  AlignedBuffer plus_, minus_;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_PEFT_ZO_ADAPTERS_H_
