// The CPU transformer on a tiny config of every family (GPT-2, LLaMA with and without biases,
// and the tiny_models.h variants of OPT, Qwen2, Qwen3 and Mistral): analytic gradients against
// finite differences of the loss, the training and inference paths agreeing, block-at-a-time
// forward with weights outside the arena, ignore-index, input validation, run-to-run determinism.
#include "runtime/model/transformer.h"

#include <cmath>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/testing/tiny_models.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

ModelConfig TinyGpt2() {
  ModelConfig c;
  c.family = ModelFamily::kGpt2;
  c.vocab_size = 53;
  c.max_seq_len = 16;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_kv_head = 2;
  c.d_model = 16;
  c.d_ff = 40;
  return c;
}

ModelConfig TinyLlama() {
  ModelConfig c;
  c.family = ModelFamily::kLlama;
  c.vocab_size = 47;
  c.max_seq_len = 32;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_kv_head = 2;
  c.d_model = 16;
  c.d_ff = 28;
  c.norm_eps = 1e-6f;
  c.rope_theta = 500.0f;
  c.tie_embeddings = false;
  return c;
}

// LLaMA with attention and MLP biases and an explicit head_dim.
ModelConfig TinyLlamaWithBiases() {
  ModelConfig c = TinyLlama();
  c.attention_bias = c.mlp_bias = true;
  c.explicit_head_dim = 6;
  return c;
}

// The other families on the LLaMA (rotary) or GPT-2 (learned positions) shape.
ModelConfig TinyOf(ModelFamily family) {
  ModelConfig c = family == ModelFamily::kOpt ? TinyGpt2() : TinyLlama();
  c.family = family;
  return testing_models::WithFamilyFeatures(c);
}

struct Batch {
  int B = 2, T = 7;
  std::vector<int32_t> tokens, targets;
};

Batch MakeBatch(const ModelConfig& c, uint32_t seed) {
  Batch b;
  std::mt19937 rng(seed);
  for (int i = 0; i < b.B * b.T; ++i) {
    b.tokens.push_back(static_cast<int32_t>(rng() % c.vocab_size));
    b.targets.push_back(static_cast<int32_t>(rng() % c.vocab_size));
  }
  b.targets[3] = -100;  // An ignored position.
  return b;
}

class TransformerTest : public ::testing::TestWithParam<ModelConfig> {};

TEST_P(TransformerTest, GradientsMatchFiniteDifferences) {
  auto model = Transformer::Create(GetParam());
  ASSERT_TRUE(model.ok()) << model.status();
  Transformer& m = **model;
  m.InitializeParameters(11);
  // Larger weights than the 0.02 init so every path carries signal.
  for (float& p : m.params()) p *= 10.0f;
  for (const TensorInfo& t : m.layout().tensors()) {
    if (t.role == TensorRole::kNorm) {
      for (int64_t i = 0; i < t.numel; ++i) m.params()[t.offset + i] = 1.0f + 0.1f * (i % 5);
    }
  }
  Batch b = MakeBatch(GetParam(), 3);
  m.ZeroGrads();
  absl::StatusOr<float> loss = m.ForwardBackward(b.tokens, b.targets, b.B, b.T);
  ASSERT_TRUE(loss.ok()) << loss.status();
  std::vector<float> grads(m.grads().begin(), m.grads().end());
  // Every tensor gets checked at a few coordinates.
  std::mt19937 rng(5);
  int checked = 0;
  for (const TensorInfo& t : m.layout().tensors()) {
    for (int trial = 0; trial < 3; ++trial) {
      const int64_t i = t.offset + static_cast<int64_t>(rng() % t.numel);
      const float saved = m.params()[i];
      const float h = 1e-2f;
      m.params()[i] = saved + h;
      const double plus = *m.Loss(b.tokens, b.targets, b.B, b.T);
      m.params()[i] = saved - h;
      const double minus = *m.Loss(b.tokens, b.targets, b.B, b.T);
      m.params()[i] = saved;
      const double numeric = (plus - minus) / (2 * h);
      EXPECT_NEAR(grads[i], numeric, 2e-3 + 3e-2 * std::fabs(numeric))
          << t.name << " element " << i - t.offset;
      ++checked;
    }
  }
  EXPECT_GT(checked, 30);
}

TEST_P(TransformerTest, TrainingAndInferenceLossesAgree) {
  auto model = Transformer::Create(GetParam());
  ASSERT_TRUE(model.ok());
  (*model)->InitializeParameters(1);
  Batch b = MakeBatch(GetParam(), 4);
  const float train = *(*model)->ForwardBackward(b.tokens, b.targets, b.B, b.T);
  const float infer = *(*model)->Loss(b.tokens, b.targets, b.B, b.T);
  EXPECT_NEAR(train, infer, 1e-5 * std::fabs(train));
  // A freshly initialized model predicts close to uniform.
  EXPECT_NEAR(infer, std::log(static_cast<float>(GetParam().vocab_size)), 0.1);
}

TEST_P(TransformerTest, BlockAtATimeForwardWithWeightsOutsideTheArena) {
  auto model = Transformer::Create(GetParam());
  ASSERT_TRUE(model.ok());
  Transformer& m = **model;
  m.InitializeParameters(2);
  Batch b = MakeBatch(GetParam(), 5);
  const float whole = *m.Loss(b.tokens, b.targets, b.B, b.T);
  const ParamLayout& layout = m.layout();
  ASSERT_TRUE(m.BeginForward(m.params().data(), b.tokens, b.B, b.T).ok());
  std::vector<float> slot(layout.BlockElements());  // One block's working set.
  for (int l = 0; l < m.config().n_layer; ++l) {
    std::copy(m.params().begin() + layout.BlockBegin(l), m.params().begin() + layout.BlockEnd(l),
              slot.begin());
    m.BlockForward(l, slot.data());
  }
  absl::StatusOr<float> streamed = m.EndForward(m.params().data(), b.targets);
  ASSERT_TRUE(streamed.ok());
  EXPECT_EQ(*streamed, whole);
}

TEST_P(TransformerTest, TwoInterleavedStreamsMatchSeparatePasses) {
  auto model = Transformer::Create(GetParam());
  ASSERT_TRUE(model.ok());
  Transformer& m = **model;
  m.InitializeParameters(9);
  std::vector<float> other(m.params().begin(), m.params().end());
  for (float& p : other) p *= 1.5f;
  Batch b = MakeBatch(GetParam(), 10);
  const float first = *m.Loss(b.tokens, b.targets, b.B, b.T);
  const float second = *m.Loss(b.tokens, b.targets, b.B, b.T, other.data());
  ASSERT_TRUE(m.BeginForward(m.params().data(), b.tokens, b.B, b.T, 0).ok());
  ASSERT_TRUE(m.BeginForward(other.data(), b.tokens, b.B, b.T, 1).ok());
  for (int l = 0; l < m.config().n_layer; ++l) {
    m.BlockForward(l, m.params().data() + m.layout().BlockBegin(l), 0);
    m.BlockForward(l, other.data() + m.layout().BlockBegin(l), 1);
  }
  EXPECT_EQ(*m.EndForward(other.data(), b.targets, 1), second);
  EXPECT_EQ(*m.EndForward(m.params().data(), b.targets, 0), first);
  EXPECT_FALSE(m.EndForward(m.params().data(), b.targets, 0).ok());  // Already ended.
}

TEST_P(TransformerTest, IgnoredTargetsDoNotCount) {
  auto model = Transformer::Create(GetParam());
  ASSERT_TRUE(model.ok());
  (*model)->InitializeParameters(3);
  Batch b = MakeBatch(GetParam(), 6);
  std::vector<float> logits(b.B * b.T * GetParam().vocab_size);
  ASSERT_TRUE((*model)->Logits(b.tokens, b.B, b.T, logits.data()).ok());
  double total = 0;
  int count = 0;
  const int V = GetParam().vocab_size;
  for (int r = 0; r < b.B * b.T; ++r) {
    if (b.targets[r] < 0) continue;
    double mx = -1e30, sum = 0;
    for (int v = 0; v < V; ++v) mx = std::max<double>(mx, logits[r * V + v]);
    for (int v = 0; v < V; ++v) sum += std::exp(logits[r * V + v] - mx);
    total += std::log(sum) + mx - logits[r * V + b.targets[r]];
    ++count;
  }
  EXPECT_NEAR(*(*model)->Loss(b.tokens, b.targets, b.B, b.T), total / count, 1e-5);
}

TEST_P(TransformerTest, GradientsAreBitwiseReproducible) {
  auto model = Transformer::Create(GetParam());
  ASSERT_TRUE(model.ok());
  (*model)->InitializeParameters(4);
  Batch b = MakeBatch(GetParam(), 7);
  (*model)->ZeroGrads();
  ASSERT_TRUE((*model)->ForwardBackward(b.tokens, b.targets, b.B, b.T).ok());
  std::vector<float> first((*model)->grads().begin(), (*model)->grads().end());
  (*model)->ZeroGrads();
  ASSERT_TRUE((*model)->ForwardBackward(b.tokens, b.targets, b.B, b.T).ok());
  EXPECT_TRUE(std::equal(first.begin(), first.end(), (*model)->grads().begin()));
}

TEST_P(TransformerTest, BadInputsAreRejectedByIndex) {
  auto model = Transformer::Create(GetParam());
  ASSERT_TRUE(model.ok());
  Batch b = MakeBatch(GetParam(), 8);
  b.tokens[4] = GetParam().vocab_size;
  EXPECT_THAT((*model)->Loss(b.tokens, b.targets, b.B, b.T).status().message(),
              HasSubstr("tokens[4]"));
  b = MakeBatch(GetParam(), 8);
  b.targets[5] = GetParam().vocab_size + 3;
  EXPECT_THAT((*model)->ForwardBackward(b.tokens, b.targets, b.B, b.T).status().message(),
              HasSubstr("targets[5]"));
  std::vector<int32_t> ignored(b.tokens.size(), -100);
  EXPECT_THAT((*model)->Loss(b.tokens, ignored, b.B, b.T).status().message(),
              HasSubstr("every target is ignored"));
  const int too_long = GetParam().max_seq_len + 1;
  std::vector<int32_t> long_tokens(too_long, 0);
  EXPECT_THAT((*model)->Loss(long_tokens, long_tokens, 1, too_long).status().message(),
              HasSubstr("exceeds the model's maximum"));
}

// A vocabulary of several head chunks (the last one partial): the online softmax across chunks
// matches a double-precision reference, and a head and token table supplied from elsewhere
// (row by row, as offloaded ZO perturbs them) give the same loss bit for bit.
TEST(TransformerHeadTest, VocabularyChunksAndSuppliedWeightsMatchTheReference) {
  ModelConfig c = TinyGpt2();
  c.vocab_size = 2 * static_cast<int>(Transformer::kHeadChunkRows) + 17;
  auto model = Transformer::Create(c);
  ASSERT_TRUE(model.ok());
  Transformer& m = **model;
  m.InitializeParameters(4);
  Batch b = MakeBatch(c, 8);
  const int V = c.vocab_size, C = c.d_model;
  std::vector<float> logits(static_cast<size_t>(b.B) * b.T * V);
  ASSERT_TRUE(m.Logits(b.tokens, b.B, b.T, logits.data()).ok());
  double total = 0;
  int count = 0;
  for (int r = 0; r < b.B * b.T; ++r) {
    if (b.targets[r] < 0) continue;
    const float* row = logits.data() + static_cast<size_t>(r) * V;
    double mx = -1e30, sum = 0;
    for (int v = 0; v < V; ++v) mx = std::max<double>(mx, row[v]);
    for (int v = 0; v < V; ++v) sum += std::exp(row[v] - mx);
    total += std::log(sum) + mx - row[b.targets[r]];
    ++count;
  }
  const float loss = *m.Loss(b.tokens, b.targets, b.B, b.T);
  EXPECT_NEAR(loss, total / count, 1e-5);

  const float* wte = m.params().data() + m.layout().tensor(m.layout().token_embedding_id()).offset;
  const std::vector<float> table(wte, wte + static_cast<size_t>(V) * C);
  std::vector<float> chunk;
  int64_t next_row = 0;
  Transformer::HeadRows head_rows = [&](int64_t row0, int64_t rows) -> const float* {
    EXPECT_EQ(row0, next_row);
    EXPECT_LE(rows, Transformer::kHeadChunkRows);
    next_row = row0 + rows;
    chunk.assign(table.begin() + row0 * C, table.begin() + (row0 + rows) * C);
    return chunk.data();
  };
  ASSERT_TRUE(m.BeginForward(m.params().data(), b.tokens, b.B, b.T, 0, table.data()).ok());
  for (int l = 0; l < c.n_layer; ++l) {
    m.BlockForward(l, m.params().data() + m.layout().BlockBegin(l));
  }
  absl::StatusOr<float> supplied = m.EndForward(m.params().data(), b.targets, 0, head_rows);
  ASSERT_TRUE(supplied.ok());
  EXPECT_EQ(*supplied, loss);
  EXPECT_EQ(next_row, V);
}

INSTANTIATE_TEST_SUITE_P(Families, TransformerTest,
                         ::testing::Values(TinyGpt2(), TinyLlama(), TinyLlamaWithBiases(),
                                           TinyOf(ModelFamily::kOpt), TinyOf(ModelFamily::kQwen2),
                                           TinyOf(ModelFamily::kQwen3),
                                           TinyOf(ModelFamily::kMistral)),
                         [](const ::testing::TestParamInfo<ModelConfig>& info) {
                           return std::string(ModelFamilyName(info.param.family)) +
                                  (info.param.attention_bias ? "_biases" : "");
                         });

}  // namespace
}  // namespace strata
