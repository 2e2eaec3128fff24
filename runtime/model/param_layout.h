// The parameter table of a model: every tensor with a stable id, its Hugging Face name, shape,
// role and offset in the model's single contiguous parameter arena (fp32 elements).
//
// Invariants the rest of Strata relies on:
// - Ids are dense (0..n-1) and stable for a given config; offsets are contiguous in id order
//   with no gaps, so the arena holds exactly NumElements() floats.
// - A transformer block's tensors are contiguous ([BlockBegin(l), BlockEnd(l))), so a block can
//   be streamed, sharded or checkpointed as one extent, and tensors sit at the same offset
//   relative to their block's start in every block (BlockTensor(l, k).offset - BlockBegin(l)).
// - Tensors that a kernel reads as one matrix are adjacent: LLaMA's q_proj, k_proj, v_proj form
//   the fused QKV weight, and gate_proj, up_proj the fused gate/up weight.
// - Linear weights are stored as (out_features, in_features), PyTorch's nn.Linear layout. GPT-2's
//   Conv1D weights are stored in checkpoints as (in, out): `transposed_in_checkpoint` marks them.
// - A tied output head has no tensor of its own: the head reads the token embedding.
#ifndef STRATA_RUNTIME_MODEL_PARAM_LAYOUT_H_
#define STRATA_RUNTIME_MODEL_PARAM_LAYOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "runtime/model/model_config.h"

namespace strata {

enum class TensorRole { kEmbedding, kAttention, kMlp, kNorm, kBias, kHead };

absl::string_view TensorRoleName(TensorRole role);

// Whether decoupled weight decay applies to tensors of this role (not to norms and biases).
bool RoleTakesWeightDecay(TensorRole role);

struct TensorInfo {
  int id = 0;
  std::string name;            // Hugging Face name, e.g. "transformer.h.0.attn.c_attn.weight".
  std::vector<int64_t> shape;  // As stored in the arena (out, in for linear weights).
  int64_t offset = 0;          // In elements from the arena start.
  int64_t numel = 0;
  TensorRole role = TensorRole::kEmbedding;
  int block = -1;                         // Transformer block index, -1 outside blocks.
  bool transposed_in_checkpoint = false;  // GPT-2 Conv1D: the checkpoint holds shape reversed.
};

// Per-block tensor slots, the same in every block (index into BlockTensor(layer, slot)).
namespace gpt2_slot {
enum : int {
  kLn1W,
  kLn1B,
  kQkvW,
  kQkvB,
  kAttnProjW,
  kAttnProjB,
  kLn2W,
  kLn2B,
  kFcW,
  kFcB,
  kFcProjW,
  kFcProjB,
  kCount
};
}
namespace llama_slot {
enum : int { kInputNormW, kQW, kKW, kVW, kOW, kPostNormW, kGateW, kUpW, kDownW, kCount };
}

class ParamLayout {
 public:
  // `config` must pass ValidateModelConfig.
  explicit ParamLayout(const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo& tensor(int id) const { return tensors_[id]; }
  int64_t NumElements() const { return num_elements_; }

  // Looks up a tensor by Hugging Face name; -1 if none. GPT-2 names are accepted with or
  // without the "transformer." prefix.
  int FindByName(absl::string_view name) const;

  int64_t BlockBegin(int layer) const { return tensors_[BlockTensorId(layer, 0)].offset; }
  int64_t BlockEnd(int layer) const;
  int64_t BlockElements() const { return BlockEnd(0) - BlockBegin(0); }
  int BlockTensorId(int layer, int slot) const { return first_block_id_ + layer * slots_ + slot; }
  const TensorInfo& BlockTensor(int layer, int slot) const {
    return tensors_[BlockTensorId(layer, slot)];
  }
  int SlotsPerBlock() const { return slots_; }

  // Tensors outside blocks (ids of the token embedding, GPT-2 position embedding, final norm
  // weight and bias, and LLaMA's untied head). -1 where the family has none.
  int token_embedding_id() const { return wte_; }
  int position_embedding_id() const { return wpe_; }
  int final_norm_weight_id() const { return lnf_w_; }
  int final_norm_bias_id() const { return lnf_b_; }
  int head_id() const { return head_; }

 private:
  int Add(std::string name, std::vector<int64_t> shape, TensorRole role, int block,
          bool transposed = false);

  ModelConfig config_;
  std::vector<TensorInfo> tensors_;
  absl::flat_hash_map<std::string, int> by_name_;
  int64_t num_elements_ = 0;
  int first_block_id_ = 0;
  int slots_ = 0;
  int wte_ = -1, wpe_ = -1, lnf_w_ = -1, lnf_b_ = -1, head_ = -1;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_MODEL_PARAM_LAYOUT_H_
