// The key/value cache of one sequence being decoded, presented to the model as a prefix
// (Transformer::BlockAdapters' prefix tuning hook, whose semantics are exactly a cache: the
// attention sees PrefixLength() key/value rows before the new tokens, which sit at positions
// PrefixLength() onwards, learned positions and RoPE angles shifted with them).
//
// It wraps the adapters the model already has (`inner`, may be null): their Forward calls
// (LoRA) pass through unchanged, and their own prefix rows (a PEFT prefix), copied in at Reset,
// stay first, so the cache reads [inner prefix rows][cached token rows] for every layer. After
// each BlockForward of a step the caller appends that block's k, v rows
// (Transformer::AttentionInputs: after RoPE and q/k norms), and commits the step once every
// layer has appended: until then PrefixLength() does not change, so every layer of a step sees
// the same positions. Not for training: it has no gradients.
#ifndef STRATA_RUNTIME_GENERATE_KV_CACHE_H_
#define STRATA_RUNTIME_GENERATE_KV_CACHE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "runtime/base/aligned_buffer.h"
#include "runtime/model/model_config.h"
#include "runtime/model/transformer.h"

namespace strata {

class KvCache final : public Transformer::BlockAdapters {
 public:
  explicit KvCache(const ModelConfig& config);

  // Empties the cache for a sequence of up to `tokens` tokens after `inner`'s prefix (whose rows
  // for inference stream `stream` are copied in). Fails when the inner prefix and `tokens`
  // exceed the model's positions.
  absl::Status Reset(Transformer::BlockAdapters* inner, int stream, int tokens);

  // Tokens cached (after the inner prefix).
  int tokens() const { return tokens_; }
  int capacity() const { return capacity_; }
  int inner_prefix() const { return inner_prefix_; }

  // Copies the k and v parts of `rows` (`count` rows of the fused q|k|v width, as
  // AttentionInputs holds them) into layer `layer` after the committed tokens.
  absl::Status Append(int layer, const float* rows, int count);
  // Makes the `count` rows every layer appended part of the cache.
  absl::Status Commit(int count);

  // BlockAdapters.
  void Forward(int layer, AdaptedSite site, const float* x, int64_t N, float* out,
               int stream) override;
  void Backward(int layer, AdaptedSite site, const float* x, const float* dout, int64_t N,
                float* dx) override;
  int PrefixLength() const override { return inner_prefix_ + tokens_; }
  PrefixRows Prefix(int layer, int stream) override;

 private:
  float* Keys(int layer) { return buffer_.data() + 2 * layer * rows_ * kv_dim_; }
  float* Values(int layer) { return Keys(layer) + rows_ * kv_dim_; }

  const int layers_, max_seq_len_;
  const int64_t kv_dim_, q_dim_, qkv_dim_;
  Transformer::BlockAdapters* inner_ = nullptr;
  int inner_prefix_ = 0;
  int tokens_ = 0;
  int capacity_ = 0;  // Tokens after the inner prefix.
  int64_t rows_ = 0;  // inner_prefix_ + capacity_: rows per layer.
  // Per layer: keys (rows_ x kv_dim_) then values.
  AlignedBuffer buffer_;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_GENERATE_KV_CACHE_H_
