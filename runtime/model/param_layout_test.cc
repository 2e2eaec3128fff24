#include "runtime/model/param_layout.h"

#include "gtest/gtest.h"

namespace strata {
namespace {

TEST(ParamLayoutTest, ContiguousTableCoversEveryParameterOnce) {
  for (ModelFamily family : {ModelFamily::kGpt2, ModelFamily::kLlama}) {
    ModelConfig c = Gpt2SmallConfig();
    c.family = family;
    c.n_kv_head = family == ModelFamily::kLlama ? 4 : 12;
    c.tie_embeddings = family == ModelFamily::kGpt2;
    ParamLayout layout(c);
    int64_t next = 0;
    for (const TensorInfo& t : layout.tensors()) {
      EXPECT_EQ(t.offset, next) << t.name;
      EXPECT_EQ(layout.FindByName(t.name), t.id);
      next += t.numel;
    }
    EXPECT_EQ(next, layout.NumElements());
    EXPECT_EQ(layout.NumElements(), c.NumParameters());
  }
}

TEST(ParamLayoutTest, BlocksAreContiguousExtentsWithTheSameInnerLayout) {
  ParamLayout layout(Gpt2SmallConfig());
  for (int l = 0; l + 1 < 12; ++l) EXPECT_EQ(layout.BlockEnd(l), layout.BlockBegin(l + 1));
  EXPECT_EQ(layout.BlockElements(), 7087872);  // 12 tensors of one GPT-2 small block.
  for (int s = 0; s < layout.SlotsPerBlock(); ++s) {
    EXPECT_EQ(layout.BlockTensor(5, s).offset - layout.BlockBegin(5),
              layout.BlockTensor(0, s).offset - layout.BlockBegin(0));
  }
  const TensorInfo& qkv = layout.BlockTensor(3, gpt2_slot::kQkvW);
  EXPECT_EQ(qkv.name, "transformer.h.3.attn.c_attn.weight");
  EXPECT_TRUE(qkv.transposed_in_checkpoint);
  EXPECT_EQ(qkv.role, TensorRole::kAttention);
  EXPECT_EQ(layout.FindByName("h.3.attn.c_attn.weight"), qkv.id);  // Base-model naming.
  EXPECT_EQ(layout.head_id(), -1);
}

TEST(ParamLayoutTest, LlamaFusedWeightsAreAdjacent) {
  ModelConfig c = Gpt2SmallConfig();
  c.family = ModelFamily::kLlama;
  c.n_kv_head = 4;
  c.tie_embeddings = false;
  ParamLayout layout(c);
  const TensorInfo& q = layout.BlockTensor(1, llama_slot::kQW);
  const TensorInfo& k = layout.BlockTensor(1, llama_slot::kKW);
  const TensorInfo& v = layout.BlockTensor(1, llama_slot::kVW);
  EXPECT_EQ(k.offset, q.offset + q.numel);
  EXPECT_EQ(v.offset, k.offset + k.numel);
  EXPECT_EQ(k.shape[0], 4 * 64);
  const TensorInfo& gate = layout.BlockTensor(1, llama_slot::kGateW);
  EXPECT_EQ(layout.BlockTensor(1, llama_slot::kUpW).offset, gate.offset + gate.numel);
  EXPECT_EQ(layout.tensor(layout.head_id()).name, "lm_head.weight");
  EXPECT_FALSE(RoleTakesWeightDecay(layout.BlockTensor(1, llama_slot::kInputNormW).role));
  EXPECT_TRUE(RoleTakesWeightDecay(q.role));
}

}  // namespace
}  // namespace strata
