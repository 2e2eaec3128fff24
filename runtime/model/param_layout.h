// The parameter table of a model: every tensor with a stable id, its Hugging Face name, shape,
// role and offset in the model's single contiguous parameter arena (fp32 elements).
//
// Invariants the rest of Strata relies on:
// - Ids are dense (0..n-1) and stable for a given config; offsets are contiguous in id order
//   with no gaps, so the arena holds exactly NumElements() floats.
// - A transformer block's tensors are contiguous ([BlockBegin(l), BlockEnd(l))), so a block can
//   be streamed, sharded or checkpointed as one extent, and tensors sit at the same offset
//   relative to their block's start in every block (BlockTensor(l, k).offset - BlockBegin(l)).
// - Tensors that a kernel reads as one matrix are adjacent: q_proj, k_proj, v_proj form the
//   fused QKV weight (and their biases the fused bias), gate_proj, up_proj the fused gate/up
//   weight.
// - Every family's block has the same part order (BlockPart), parts a family lacks left out:
//   norm 1, QKV, q/k norms, attention output, norm 2, MLP in, MLP out; weights before biases.
//   GPT-2's and LLaMA's tensor ids are therefore the same as they always were, so step logs
//   (whose noise is keyed by tensor id) replay unchanged.
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

// The parts of a block the kernels read. kQkvW is the fused (q_dim + 2 kv_dim, d_model) weight
// (GPT-2's c_attn, or q_proj, k_proj, v_proj adjacent); kUpW the MLP's first matrix (c_fc,
// fc1, or gate_proj and up_proj adjacent: (2 d_ff, d_model)); kDownW the second.
enum class BlockPart : int {
  kNorm1W,
  kNorm1B,
  kQkvW,
  kQkvB,
  kQNorm,
  kKNorm,
  kOW,
  kOB,
  kNorm2W,
  kNorm2B,
  kUpW,
  kUpB,
  kDownW,
  kDownB,
  kCount
};

class ParamLayout {
 public:
  // `config` must pass ValidateModelConfig.
  explicit ParamLayout(const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo& tensor(int id) const { return tensors_[id]; }
  int64_t NumElements() const { return num_elements_; }

  // Looks up a tensor by Hugging Face name; -1 if none. GPT-2 names are accepted with or
  // without the "transformer." prefix, OPT's with "model.decoder." or "decoder.".
  int FindByName(absl::string_view name) const;

  int64_t BlockBegin(int layer) const { return tensors_[BlockTensorId(layer, 0)].offset; }
  int64_t BlockEnd(int layer) const;
  int64_t BlockElements() const { return BlockEnd(0) - BlockBegin(0); }
  // Tensor `slot` (0 .. SlotsPerBlock() - 1) of block `layer`.
  int BlockTensorId(int layer, int slot) const { return first_block_id_ + layer * slots_ + slot; }
  const TensorInfo& BlockTensor(int layer, int slot) const {
    return tensors_[BlockTensorId(layer, slot)];
  }
  int SlotsPerBlock() const { return slots_; }
  // Where `part` starts relative to its block's start, in elements; -1 if the family has none.
  int64_t PartOffset(BlockPart part) const { return part_offset_[static_cast<int>(part)]; }

  // Tensors outside blocks: the token embedding, the learned position table, OPT's project_in
  // and project_out, the final norm's weight and bias, and an untied head. -1 where none.
  int token_embedding_id() const { return wte_; }
  int position_embedding_id() const { return wpe_; }
  int project_in_id() const { return project_in_; }
  int project_out_id() const { return project_out_; }
  int final_norm_weight_id() const { return lnf_w_; }
  int final_norm_bias_id() const { return lnf_b_; }
  int head_id() const { return head_; }

 private:
  int Add(std::string name, std::vector<int64_t> shape, TensorRole role, int block,
          bool transposed = false);
  // Adds block `layer`'s tensors in BlockPart order.
  void AddBlock(int layer);

  ModelConfig config_;
  std::vector<TensorInfo> tensors_;
  absl::flat_hash_map<std::string, int> by_name_;
  int64_t num_elements_ = 0;
  int first_block_id_ = 0;
  int slots_ = 0;
  int64_t part_offset_[static_cast<int>(BlockPart::kCount)];
  int wte_ = -1, wpe_ = -1, project_in_ = -1, project_out_ = -1, lnf_w_ = -1, lnf_b_ = -1,
      head_ = -1;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_MODEL_PARAM_LAYOUT_H_
