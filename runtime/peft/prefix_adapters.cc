// See prefix_adapters.h.
#include "runtime/peft/prefix_adapters.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/base/splitmix.h"

namespace strata {

absl::StatusOr<std::unique_ptr<PrefixAdapters>> PrefixAdapters::Create(const ParamLayout& base,
                                                                       int num_tokens) {
  const ModelConfig& c = base.config();
  if (num_tokens < 1 || num_tokens >= c.max_seq_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefix num_tokens must be 1 to ", c.max_seq_len - 1,
                     " (the model's positions hold the prefix and the tokens)"));
  }
  auto prefix = std::unique_ptr<PrefixAdapters>(
      new PrefixAdapters(num_tokens, c.n_layer, static_cast<int64_t>(c.kv_dim())));
  prefix->AddTensor("prompt_embeddings", {num_tokens, prefix->row()}, -1);
  prefix->Allocate();
  return prefix;
}

std::string PrefixAdapters::Describe() const {
  return absl::StrFormat("prefix tuning: %d virtual tokens x %d layers: %d parameters", num_tokens_,
                         layers_, NumElements());
}

void PrefixAdapters::Initialize(uint64_t seed) {
  uint64_t state = TensorStream(seed, 0);
  for (float& w : weights()) w = static_cast<float>(Normal(state));
}

absl::Status PrefixAdapters::InitializeFromActivations(Transformer& model,
                                                       absl::Span<const int32_t> tokens) {
  if (static_cast<int>(tokens.size()) != num_tokens_) {
    return absl::InvalidArgumentError(absl::StrCat("the prefix's initialization takes ",
                                                   num_tokens_, " tokens, not ", tokens.size()));
  }
  Transformer::BlockAdapters* attached = model.adapters();
  const bool frozen = model.base_frozen();
  model.SetAdapters(nullptr, false);
  const ModelConfig& c = model.config();
  const float* params = model.params().data();
  absl::Status status = model.BeginForward(params, tokens, 1, num_tokens_, 0);
  const int64_t qkv = c.qkv_dim(), q = c.q_dim();
  float* w = weights().data();
  for (int l = 0; status.ok() && l < layers_; ++l) {
    model.BlockForward(l, params + model.layout().BlockBegin(l), 0);
    const float* rows = model.AttentionInputs(0);
    for (int t = 0; t < num_tokens_; ++t) {
      float* out = w + t * row() + l * 2 * kv_dim_;
      std::memcpy(out, rows + t * qkv + q, sizeof(float) * kv_dim_);                      // k.
      std::memcpy(out + kv_dim_, rows + t * qkv + q + kv_dim_, sizeof(float) * kv_dim_);  // v.
    }
  }
  model.AbandonForward(0);
  model.SetAdapters(attached, frozen);
  return status;
}

Transformer::BlockAdapters::PrefixRows PrefixAdapters::Prefix(int layer, int stream) {
  const float* base = StreamWeights(stream) + layer * 2 * kv_dim_;
  return {base, base + kv_dim_, row()};
}

float* PrefixAdapters::PrefixKeyGrads(int layer) { return grads().data() + layer * 2 * kv_dim_; }

float* PrefixAdapters::PrefixValueGrads(int layer) {
  return grads().data() + layer * 2 * kv_dim_ + kv_dim_;
}

}  // namespace strata
