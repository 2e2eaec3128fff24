// What FO and ZO train over a frozen base: adapter tensors in one fp32 arena (LoRA's A and B
// matrices, a prefix's key/value rows) that hook into the model's blocks
// (Transformer::BlockAdapters). The training loops (ZoAdapters, AdapterAdamWUpdate), checkpoints
// (peft_checkpoint.h) and federated clients see adapters only through this.
#ifndef STRATA_RUNTIME_PEFT_TRAINABLE_ADAPTERS_H_
#define STRATA_RUNTIME_PEFT_TRAINABLE_ADAPTERS_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "runtime/base/aligned_buffer.h"
#include "runtime/model/param_layout.h"
#include "runtime/model/transformer.h"

namespace strata {

class TrainableAdapters : public Transformer::BlockAdapters {
 public:
  enum class Kind { kLora, kPrefix };
  virtual Kind kind() const = 0;
  // A line for logs: what these adapters are and how many parameters they train.
  virtual std::string Describe() const = 0;

  // The arena's tensors (PEFT's names and shapes), in arena order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  int64_t NumElements() const { return weights_.size(); }
  absl::Span<float> weights() { return weights_.span(); }
  absl::Span<const float> weights() const { return weights_.span(); }
  // Allocated (zero) on first use.
  absl::Span<float> grads() {
    if (grads_.size() == 0) {
      grads_.Resize(weights_.size());
      ZeroGrads();
    }
    return grads_.span();
  }
  void ZeroGrads() {
    if (grads_.size() > 0) std::memset(grads_.data(), 0, sizeof(float) * grads_.size());
  }
  // The weights inference stream `stream` (0 or 1) runs with, in this arena's layout (ZO's
  // perturbed copies); null returns it to weights().
  void SetStreamWeights(int stream, const float* weights) { stream_weights_[stream] = weights; }

 protected:
  const float* StreamWeights(int stream) const {
    return stream_weights_[stream] != nullptr ? stream_weights_[stream] : weights_.data();
  }
  // Appends a tensor after the last one; the arena is sized by Allocate.
  int AddTensor(std::string name, std::vector<int64_t> shape, int block) {
    TensorInfo t;
    t.id = static_cast<int>(tensors_.size());
    t.name = std::move(name);
    t.numel = 1;
    for (int64_t d : shape) t.numel *= d;
    t.shape = std::move(shape);
    t.offset = tensors_.empty() ? 0 : tensors_.back().offset + tensors_.back().numel;
    t.role = TensorRole::kAttention;
    t.block = block;
    tensors_.push_back(std::move(t));
    return tensors_.back().id;
  }
  void Allocate() {
    const TensorInfo& last = tensors_.back();
    weights_.Resize(last.offset + last.numel);
    std::memset(weights_.data(), 0, sizeof(float) * weights_.size());
  }

 private:
  std::vector<TensorInfo> tensors_;
  AlignedBuffer weights_, grads_;
  const float* stream_weights_[2] = {nullptr, nullptr};
};

// Fails when `seq` tokens after the adapters' prefix (`adapters` may be null) exceed the
// model's positions, naming both.
inline absl::Status CheckSequenceFits(const ModelConfig& model, int seq,
                                      const TrainableAdapters* adapters) {
  const int prefix = adapters != nullptr ? adapters->PrefixLength() : 0;
  if (seq + prefix <= model.max_seq_len) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "seq %d%s exceeds the model's maximum sequence length %d", seq,
      prefix > 0 ? absl::StrFormat(" after a prefix of %d", prefix) : "", model.max_seq_len));
}

}  // namespace strata

#endif  // STRATA_RUNTIME_PEFT_TRAINABLE_ADAPTERS_H_
