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

void ParamLayout::AddBlock(int l) {
  const ModelConfig& c = config_;
  const Architecture a = c.arch();
  const int64_t C = c.d_model, F = c.d_ff, Q = c.q_dim(), KV = c.kv_dim(), HD = c.head_dim();
  using R = TensorRole;
  using P = BlockPart;
  auto mark = [&](P part) {
    if (l == 0)
      part_offset_[static_cast<int>(part)] = num_elements_ - tensors_[first_block_id_].offset;
  };
  switch (c.family) {
    case ModelFamily::kGpt2: {
      const std::string p = absl::StrCat("transformer.h.", l, ".");
      if (l == 0) part_offset_[0] = 0;
      Add(p + "ln_1.weight", {C}, R::kNorm, l);
      mark(P::kNorm1B);
      Add(p + "ln_1.bias", {C}, R::kBias, l);
      mark(P::kQkvW);
      Add(p + "attn.c_attn.weight", {3 * C, C}, R::kAttention, l, true);
      mark(P::kQkvB);
      Add(p + "attn.c_attn.bias", {3 * C}, R::kBias, l);
      mark(P::kOW);
      Add(p + "attn.c_proj.weight", {C, C}, R::kAttention, l, true);
      mark(P::kOB);
      Add(p + "attn.c_proj.bias", {C}, R::kBias, l);
      mark(P::kNorm2W);
      Add(p + "ln_2.weight", {C}, R::kNorm, l);
      mark(P::kNorm2B);
      Add(p + "ln_2.bias", {C}, R::kBias, l);
      mark(P::kUpW);
      Add(p + "mlp.c_fc.weight", {F, C}, R::kMlp, l, true);
      mark(P::kUpB);
      Add(p + "mlp.c_fc.bias", {F}, R::kBias, l);
      mark(P::kDownW);
      Add(p + "mlp.c_proj.weight", {C, F}, R::kMlp, l, true);
      mark(P::kDownB);
      Add(p + "mlp.c_proj.bias", {C}, R::kBias, l);
      return;
    }
    case ModelFamily::kOpt: {
      const std::string p = absl::StrCat("model.decoder.layers.", l, ".");
      if (l == 0) part_offset_[0] = 0;
      Add(p + "self_attn_layer_norm.weight", {C}, R::kNorm, l);
      mark(P::kNorm1B);
      Add(p + "self_attn_layer_norm.bias", {C}, R::kBias, l);
      mark(P::kQkvW);
      for (const char* m : {"q_proj", "k_proj", "v_proj"}) {
        Add(absl::StrCat(p, "self_attn.", m, ".weight"), {C, C}, R::kAttention, l);
      }
      mark(P::kQkvB);
      for (const char* m : {"q_proj", "k_proj", "v_proj"}) {
        Add(absl::StrCat(p, "self_attn.", m, ".bias"), {C}, R::kBias, l);
      }
      mark(P::kOW);
      Add(p + "self_attn.out_proj.weight", {C, C}, R::kAttention, l);
      mark(P::kOB);
      Add(p + "self_attn.out_proj.bias", {C}, R::kBias, l);
      mark(P::kNorm2W);
      Add(p + "final_layer_norm.weight", {C}, R::kNorm, l);
      mark(P::kNorm2B);
      Add(p + "final_layer_norm.bias", {C}, R::kBias, l);
      mark(P::kUpW);
      Add(p + "fc1.weight", {F, C}, R::kMlp, l);
      mark(P::kUpB);
      Add(p + "fc1.bias", {F}, R::kBias, l);
      mark(P::kDownW);
      Add(p + "fc2.weight", {C, F}, R::kMlp, l);
      mark(P::kDownB);
      Add(p + "fc2.bias", {C}, R::kBias, l);
      return;
    }
    default:
      break;
  }
  // LLaMA-style (llama, mistral, qwen2, qwen3).
  const std::string p = absl::StrCat("model.layers.", l, ".");
  if (l == 0) part_offset_[0] = 0;
  Add(p + "input_layernorm.weight", {C}, R::kNorm, l);
  mark(P::kQkvW);
  Add(p + "self_attn.q_proj.weight", {Q, C}, R::kAttention, l);
  Add(p + "self_attn.k_proj.weight", {KV, C}, R::kAttention, l);
  Add(p + "self_attn.v_proj.weight", {KV, C}, R::kAttention, l);
  if (a.qkv_bias) {
    mark(P::kQkvB);
    Add(p + "self_attn.q_proj.bias", {Q}, R::kBias, l);
    Add(p + "self_attn.k_proj.bias", {KV}, R::kBias, l);
    Add(p + "self_attn.v_proj.bias", {KV}, R::kBias, l);
  }
  if (a.qk_norm) {
    mark(P::kQNorm);
    Add(p + "self_attn.q_norm.weight", {HD}, R::kNorm, l);
    mark(P::kKNorm);
    Add(p + "self_attn.k_norm.weight", {HD}, R::kNorm, l);
  }
  mark(P::kOW);
  Add(p + "self_attn.o_proj.weight", {C, Q}, R::kAttention, l);
  if (a.o_bias) {
    mark(P::kOB);
    Add(p + "self_attn.o_proj.bias", {C}, R::kBias, l);
  }
  mark(P::kNorm2W);
  Add(p + "post_attention_layernorm.weight", {C}, R::kNorm, l);
  mark(P::kUpW);
  Add(p + "mlp.gate_proj.weight", {F, C}, R::kMlp, l);
  Add(p + "mlp.up_proj.weight", {F, C}, R::kMlp, l);
  if (a.mlp_bias) {
    mark(P::kUpB);
    Add(p + "mlp.gate_proj.bias", {F}, R::kBias, l);
    Add(p + "mlp.up_proj.bias", {F}, R::kBias, l);
  }
  mark(P::kDownW);
  Add(p + "mlp.down_proj.weight", {C, F}, R::kMlp, l);
  if (a.mlp_bias) {
    mark(P::kDownB);
    Add(p + "mlp.down_proj.bias", {C}, R::kBias, l);
  }
}

ParamLayout::ParamLayout(const ModelConfig& config) : config_(config) {
  for (int64_t& offset : part_offset_) offset = -1;
  const Architecture a = config.arch();
  const int64_t C = config.d_model, V = config.vocab_size, E = config.embed_dim();
  using R = TensorRole;
  const bool gpt2 = config.family == ModelFamily::kGpt2;
  const bool opt = config.family == ModelFamily::kOpt;
  const std::string top = gpt2 ? "transformer." : opt ? "model.decoder." : "model.";
  wte_ = Add(top + (gpt2 ? "wte.weight" : "embed_tokens.weight"), {V, E}, R::kEmbedding, -1);
  if (a.learned_positions) {
    wpe_ = Add(top + (gpt2 ? "wpe.weight" : "embed_positions.weight"), {config.position_rows(), C},
               R::kEmbedding, -1);
  }
  if (a.projections) project_in_ = Add(top + "project_in.weight", {C, E}, R::kEmbedding, -1);
  first_block_id_ = static_cast<int>(tensors_.size());
  for (int l = 0; l < config.n_layer; ++l) {
    AddBlock(l);
    if (l == 0) slots_ = static_cast<int>(tensors_.size()) - first_block_id_;
  }
  if (a.final_norm) {
    lnf_w_ = Add(top + (gpt2  ? "ln_f.weight"
                        : opt ? "final_layer_norm.weight"
                              : "norm.weight"),
                 {C}, R::kNorm, -1);
    if (a.layer_norm) {
      lnf_b_ = Add(top + (gpt2 ? "ln_f.bias" : "final_layer_norm.bias"), {C}, R::kBias, -1);
    }
  }
  if (a.projections) project_out_ = Add(top + "project_out.weight", {E, C}, R::kEmbedding, -1);
  if (!config.tie_embeddings) head_ = Add("lm_head.weight", {V, E}, R::kHead, -1);
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
  if (config_.family == ModelFamily::kOpt && absl::StartsWith(name, "decoder.")) {
    it = by_name_.find(absl::StrCat("model.", name));
    if (it != by_name_.end()) return it->second;
  }
  return -1;
}

}  // namespace strata
