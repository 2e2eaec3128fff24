// Prefix tuning (Li & Liang 2021; MeZO's prefix setting): `num_tokens` learned key and value
// rows per layer that every sequence's attention sees before its own tokens, as a Hugging Face
// model sees past_key_values of that length: the tokens sit at positions num_tokens onwards
// (learned position rows and RoPE angles shift with them) and the prefix rows are used as given
// (no projection, norm or rotation). The arena is PEFT's PREFIX_TUNING tensor
// "prompt_embeddings" (num_tokens, n_layer * 2 * kv_dim): per virtual token, each layer's key
// then value row, each kv head's head_dim values in turn. No matmul is adapted.
#ifndef STRATA_RUNTIME_PEFT_PREFIX_ADAPTERS_H_
#define STRATA_RUNTIME_PEFT_PREFIX_ADAPTERS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/model/transformer.h"
#include "runtime/peft/trainable_adapters.h"

namespace strata {

class PrefixAdapters final : public TrainableAdapters {
 public:
  // Fails for num_tokens < 1 or a prefix the model's positions cannot hold.
  static absl::StatusOr<std::unique_ptr<PrefixAdapters>> Create(const ParamLayout& base,
                                                                int num_tokens);

  Kind kind() const override { return Kind::kPrefix; }
  std::string Describe() const override;
  int num_tokens() const { return num_tokens_; }
  int64_t kv_dim() const { return kv_dim_; }

  // Every value standard normal from `seed` (PEFT's nn.Embedding initialization).
  void Initialize(uint64_t seed);
  // MeZO's initialization from real activations: the keys and values `model` (its own weights,
  // no adapters) computes for `tokens` (num_tokens ids) at positions 0 .. num_tokens - 1, i.e.
  // the cache of that text. The model's adapters are detached while it runs and restored.
  absl::Status InitializeFromActivations(Transformer& model, absl::Span<const int32_t> tokens);

  int PrefixLength() const override { return num_tokens_; }
  PrefixRows Prefix(int layer, int stream) override;
  float* PrefixKeyGrads(int layer) override;
  float* PrefixValueGrads(int layer) override;
  void Forward(int, AdaptedSite, const float*, int64_t, float*, int) override {}
  void Backward(int, AdaptedSite, const float*, const float*, int64_t, float*) override {}

 private:
  PrefixAdapters(int num_tokens, int layers, int64_t kv_dim)
      : num_tokens_(num_tokens), layers_(layers), kv_dim_(kv_dim) {}
  int64_t row() const { return 2 * kv_dim_ * layers_; }

  int num_tokens_;
  int layers_;
  int64_t kv_dim_;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_PEFT_PREFIX_ADAPTERS_H_
