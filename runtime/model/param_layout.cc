// See param_layout.h.
#include "runtime/model/param_layout.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace strata {

absl::string_view TensorRoleName(TensorRole role) {
  switch (role) {
    case TensorRole::kEmbedding:
      return "embedding";
    case TensorRole::kAttention:
      return "attention";
    case TensorRole::kMlp:
      return "mlp";
    case TensorRole::kNorm:
      return "norm";
    case TensorRole::kBias:
      return "bias";
    case TensorRole::kHead:
      return "head";
  }
  return "?";
}

bool RoleTakesWeightDecay(TensorRole role) {
  return role != TensorRole::kNorm && role != TensorRole::kBias;
}

int ParamLayout::Add(std::string name, std::vector<int64_t> shape, TensorRole role, int block,
                     bool transposed) {
  TensorInfo info;
  info.id = static_cast<int>(tensors_.size());
  info.name = std::move(name);
  info.shape = std::move(shape);
  info.numel = 1;
  for (int64_t d : info.shape) info.numel *= d;
  info.offset = num_elements_;
  info.role = role;
  info.block = block;
  info.transposed_in_checkpoint = transposed;
  num_elements_ += info.numel;
  by_name_[info.name] = info.id;
  tensors_.push_back(std::move(info));
  return tensors_.back().id;
}

ParamLayout::ParamLayout(const ModelConfig& config) : config_(config) {
  const int64_t C = config.d_model, V = config.vocab_size, F = config.d_ff;
  using R = TensorRole;
  if (config.family == ModelFamily::kGpt2) {
    wte_ = Add("transformer.wte.weight", {V, C}, R::kEmbedding, -1);
    wpe_ = Add("transformer.wpe.weight", {config.max_seq_len, C}, R::kEmbedding, -1);
    first_block_id_ = static_cast<int>(tensors_.size());
    slots_ = gpt2_slot::kCount;
    for (int l = 0; l < config.n_layer; ++l) {
      const std::string p = absl::StrCat("transformer.h.", l, ".");
      Add(p + "ln_1.weight", {C}, R::kNorm, l);
      Add(p + "ln_1.bias", {C}, R::kBias, l);
      Add(p + "attn.c_attn.weight", {3 * C, C}, R::kAttention, l, true);
      Add(p + "attn.c_attn.bias", {3 * C}, R::kBias, l);
      Add(p + "attn.c_proj.weight", {C, C}, R::kAttention, l, true);
      Add(p + "attn.c_proj.bias", {C}, R::kBias, l);
      Add(p + "ln_2.weight", {C}, R::kNorm, l);
      Add(p + "ln_2.bias", {C}, R::kBias, l);
      Add(p + "mlp.c_fc.weight", {F, C}, R::kMlp, l, true);
      Add(p + "mlp.c_fc.bias", {F}, R::kBias, l);
      Add(p + "mlp.c_proj.weight", {C, F}, R::kMlp, l, true);
      Add(p + "mlp.c_proj.bias", {C}, R::kBias, l);
    }
    lnf_w_ = Add("transformer.ln_f.weight", {C}, R::kNorm, -1);
    lnf_b_ = Add("transformer.ln_f.bias", {C}, R::kBias, -1);
  } else {
    const int64_t kv = static_cast<int64_t>(config.n_kv_head) * config.head_dim();
    wte_ = Add("model.embed_tokens.weight", {V, C}, R::kEmbedding, -1);
    first_block_id_ = static_cast<int>(tensors_.size());
    slots_ = llama_slot::kCount;
    for (int l = 0; l < config.n_layer; ++l) {
      const std::string p = absl::StrCat("model.layers.", l, ".");
      Add(p + "input_layernorm.weight", {C}, R::kNorm, l);
      Add(p + "self_attn.q_proj.weight", {C, C}, R::kAttention, l);
      Add(p + "self_attn.k_proj.weight", {kv, C}, R::kAttention, l);
      Add(p + "self_attn.v_proj.weight", {kv, C}, R::kAttention, l);
      Add(p + "self_attn.o_proj.weight", {C, C}, R::kAttention, l);
      Add(p + "post_attention_layernorm.weight", {C}, R::kNorm, l);
      Add(p + "mlp.gate_proj.weight", {F, C}, R::kMlp, l);
      Add(p + "mlp.up_proj.weight", {F, C}, R::kMlp, l);
      Add(p + "mlp.down_proj.weight", {C, F}, R::kMlp, l);
    }
    lnf_w_ = Add("model.norm.weight", {C}, R::kNorm, -1);
    if (!config.tie_embeddings) head_ = Add("lm_head.weight", {V, C}, R::kHead, -1);
  }
}

int64_t ParamLayout::BlockEnd(int layer) const {
  const TensorInfo& last = tensors_[BlockTensorId(layer, slots_ - 1)];
  return last.offset + last.numel;
}

int ParamLayout::FindByName(absl::string_view name) const {
  auto it = by_name_.find(name);
  if (it != by_name_.end()) return it->second;
  if (config_.family == ModelFamily::kGpt2 && !absl::StartsWith(name, "transformer.")) {
    it = by_name_.find(absl::StrCat("transformer.", name));
    if (it != by_name_.end()) return it->second;
  }
  return -1;
}

}  // namespace strata
