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
  const TensorInfo& qkv = layout.BlockTensor(3, 2);
  EXPECT_EQ(qkv.name, "transformer.h.3.attn.c_attn.weight");
  EXPECT_TRUE(qkv.transposed_in_checkpoint);
  EXPECT_EQ(qkv.role, TensorRole::kAttention);
  EXPECT_EQ(layout.FindByName("h.3.attn.c_attn.weight"), qkv.id);  // Base-model naming.
  EXPECT_EQ(layout.head_id(), -1);
  EXPECT_EQ(layout.PartOffset(BlockPart::kQkvW), qkv.offset - layout.BlockBegin(3));
  EXPECT_EQ(layout.PartOffset(BlockPart::kQNorm), -1);
}

TEST(ParamLayoutTest, LlamaFusedWeightsAreAdjacent) {
  ModelConfig c = Gpt2SmallConfig();
  c.family = ModelFamily::kLlama;
  c.n_kv_head = 4;
  c.tie_embeddings = false;
  ParamLayout layout(c);
  const TensorInfo& q = layout.BlockTensor(1, 1);
  const TensorInfo& k = layout.BlockTensor(1, 2);
  const TensorInfo& v = layout.BlockTensor(1, 3);
  EXPECT_EQ(q.offset - layout.BlockBegin(1), layout.PartOffset(BlockPart::kQkvW));
  EXPECT_EQ(k.offset, q.offset + q.numel);
  EXPECT_EQ(v.offset, k.offset + k.numel);
  EXPECT_EQ(k.shape[0], 4 * 64);
  const TensorInfo& gate = layout.BlockTensor(1, 6);
  EXPECT_EQ(gate.name, "model.layers.1.mlp.gate_proj.weight");
  EXPECT_EQ(gate.offset - layout.BlockBegin(1), layout.PartOffset(BlockPart::kUpW));
  EXPECT_EQ(layout.BlockTensor(1, 7).offset, gate.offset + gate.numel);
  EXPECT_EQ(layout.PartOffset(BlockPart::kQkvB), -1);
  EXPECT_EQ(layout.tensor(layout.head_id()).name, "lm_head.weight");
  EXPECT_FALSE(RoleTakesWeightDecay(layout.BlockTensor(1, 0).role));
  EXPECT_TRUE(RoleTakesWeightDecay(q.role));
}

// Every family's layout holds exactly NumParameters() elements, every part the family has is
// where its first tensor is, and the fused matrices are adjacent.
TEST(ParamLayoutTest, EveryFamilyCountsAndPlacesItsParts) {
  int count = 0;
  const ModelFamily* families = AllModelFamilies(&count);
  for (int i = 0; i < count; ++i) {
    ModelConfig c;
    c.family = families[i];
    c.vocab_size = 50;
    c.max_seq_len = 16;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_kv_head = c.family == ModelFamily::kGpt2 || c.family == ModelFamily::kOpt ? 4 : 2;
    c.d_model = 24;
    c.d_ff = 40;
    c.tie_embeddings = c.family != ModelFamily::kLlama;
    if (c.family == ModelFamily::kQwen3) c.explicit_head_dim = 8;
    if (c.family == ModelFamily::kLlama) c.attention_bias = c.mlp_bias = true;
    if (c.family == ModelFamily::kOpt) c.word_embed_proj_dim = 16;
    if (c.family == ModelFamily::kOpt) c.layer_norm_before = false;
    ASSERT_TRUE(ValidateModelConfig(c).ok()) << ModelFamilyName(c.family);
    ParamLayout layout(c);
    SCOPED_TRACE(ModelFamilyName(c.family));
    EXPECT_EQ(layout.NumElements(), c.NumParameters());
    const Architecture a = c.arch();
    EXPECT_EQ(layout.PartOffset(BlockPart::kQkvB) >= 0, a.qkv_bias);
    EXPECT_EQ(layout.PartOffset(BlockPart::kOB) >= 0, a.o_bias);
    EXPECT_EQ(layout.PartOffset(BlockPart::kDownB) >= 0, a.mlp_bias);
    EXPECT_EQ(layout.PartOffset(BlockPart::kQNorm) >= 0, a.qk_norm);
    EXPECT_EQ(layout.PartOffset(BlockPart::kNorm1B) >= 0, a.layer_norm);
    EXPECT_EQ(layout.project_in_id() >= 0, a.projections);
    EXPECT_EQ(layout.final_norm_weight_id() >= 0, a.final_norm);
    int64_t previous = -1;
    for (int p = 0; p < static_cast<int>(BlockPart::kCount); ++p) {
      const int64_t offset = layout.PartOffset(static_cast<BlockPart>(p));
      if (offset < 0) continue;
      EXPECT_GT(offset, previous) << "part " << p;
      previous = offset;
      bool starts_a_tensor = false;
      for (int s = 0; s < layout.SlotsPerBlock(); ++s) {
        starts_a_tensor |= layout.BlockTensor(1, s).offset - layout.BlockBegin(1) == offset;
      }
      EXPECT_TRUE(starts_a_tensor) << "part " << p;
    }
    const int64_t qkv_end =
        layout.PartOffset(BlockPart::kQkvW) + int64_t{c.q_dim() + 2 * c.kv_dim()} * c.d_model;
    EXPECT_EQ(qkv_end, a.qkv_bias  ? layout.PartOffset(BlockPart::kQkvB)
                       : a.qk_norm ? layout.PartOffset(BlockPart::kQNorm)
                                   : layout.PartOffset(BlockPart::kOW));
  }
}

TEST(ParamLayoutTest, OptNamesWithEitherPrefix) {
  ModelConfig c;
  c.family = ModelFamily::kOpt;
  c.vocab_size = 50;
  c.max_seq_len = 16;
  c.n_layer = 1;
  c.n_head = c.n_kv_head = 2;
  c.d_model = 8;
  c.d_ff = 16;
  ParamLayout layout(c);
  const int id = layout.FindByName("model.decoder.layers.0.fc1.weight");
  ASSERT_GE(id, 0);
  EXPECT_EQ(layout.FindByName("decoder.layers.0.fc1.weight"), id);
  EXPECT_EQ(layout.tensor(layout.position_embedding_id()).shape[0], 18);  // 16 + HF's offset 2.
}

}  // namespace
}  // namespace strata
