// Generation on a tiny model of every family: decoding with the key/value cache gives the tokens
// (and, within rounding, the logits) of decoding without it, with no adapters, a PEFT prefix or
// LoRA attached; the uncached logits are the full forward's last row; sampling is fixed by its
// seed (across calls, thread counts and the two paths) and reduces to greedy with top_k = 1 or
// a tiny temperature; stop tokens, stop strings and max_new_tokens end decoding; a prompt the
// model's positions cannot hold is refused naming both lengths; Transformer::StreamLogits is a
// row of Transformer::Logits.
#include "runtime/generate/generator.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/base/thread_pool.h"
#include "runtime/kernels/matmul.h"
#include "runtime/model/testing/torch_parity.h"
#include "runtime/peft/lora_adapters.h"
#include "runtime/peft/prefix_adapters.h"
#include "runtime/testing/tiny_models.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

// One character per id: the tiny vocabulary as text, so stop strings can span tokens.
class LetterTokenizer final : public Tokenizer {
 public:
  static constexpr char kLetters[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  using Tokenizer::Encode;
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text,
                                              const EncodeOptions&) const override {
    std::vector<int32_t> ids;
    for (char ch : text) ids.push_back(static_cast<int32_t>(std::string(kLetters).find(ch)));
    return ids;
  }
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const override {
    std::string text;
    for (int32_t id : ids) {
      if (id < 0 || id >= vocab_size()) return absl::InvalidArgumentError("id outside");
      text += kLetters[id];
    }
    return text;
  }
  int vocab_size() const override { return sizeof(kLetters) - 1; }
  int eos_id() const override { return -1; }
  int bos_id() const override { return -1; }
};

std::unique_ptr<Transformer> TinyModel(ModelFamily family, uint64_t seed) {
  auto model = Transformer::Create(testing_models::Tiny(family, 3));
  EXPECT_TRUE(model.ok()) << model.status();
  (*model)->InitializeParameters(seed);
  testing_parity::ScaleParameters(**model, seed);
  return *std::move(model);
}

std::unique_ptr<Generator> MakeGenerator(Transformer& model, const Tokenizer* tokenizer) {
  Generator::Options o;
  o.model = &model;
  o.tokenizer = tokenizer;
  auto g = Generator::Create(o);
  EXPECT_TRUE(g.ok()) << g.status();
  return *std::move(g);
}

GenerateOptions Greedy(int max_new_tokens, bool use_cache = true) {
  GenerateOptions o;
  o.max_new_tokens = max_new_tokens;
  o.use_cache = use_cache;
  o.keep_logits = true;
  return o;
}

GenerateOptions Sampled(int max_new_tokens, float temperature, uint64_t seed) {
  GenerateOptions o = Greedy(max_new_tokens);
  o.sampling.temperature = temperature;
  o.sampling.seed = seed;
  return o;
}

// max |a - b| / (1 + max |b|) over one step's logits.
double StepError(const std::vector<float>& a, const std::vector<float>& b, int step, int V) {
  double diff = 0, scale = 0;
  for (int v = 0; v < V; ++v) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[step * V + v]) - b[step * V + v]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[step * V + v])));
  }
  return diff / (1 + scale);
}

// Cached and uncached decoding agree token for token, their logits within rounding: greedy, and
// sampled (which visits more varied tokens than a tiny model's greedy loop).
void ExpectCacheMatchesRecompute(Generator& g, const std::vector<int32_t>& prompt, int new_tokens,
                                 int V) {
  for (const float temperature : {0.0f, 2.0f}) {
    SCOPED_TRACE(absl::StrCat("temperature ", temperature));
    GenerateOptions o = Sampled(new_tokens, temperature, 21);
    absl::StatusOr<Generation> cached = g.Generate(prompt, o);
    o.use_cache = false;
    absl::StatusOr<Generation> full = g.Generate(prompt, o);
    ASSERT_TRUE(cached.ok()) << cached.status();
    ASSERT_TRUE(full.ok()) << full.status();
    ASSERT_EQ(cached->tokens.size(), static_cast<size_t>(new_tokens));
    EXPECT_EQ(cached->tokens, full->tokens);
    EXPECT_EQ(cached->finish, FinishReason::kLength);
    for (int s = 0; s < new_tokens; ++s) {
      EXPECT_LE(StepError(cached->logits, full->logits, s, V), 2e-5) << "step " << s;
    }
    if (temperature > 0) {  // Not one token repeated: the cache's rows all take part.
      EXPECT_GT(std::set<int32_t>(cached->tokens.begin(), cached->tokens.end()).size(), 3u);
    }
  }
}

class GeneratorFamilyTest : public ::testing::TestWithParam<ModelFamily> {};

TEST_P(GeneratorFamilyTest, CachedGreedyEqualsRecomputingTheSequence) {
  std::unique_ptr<Transformer> model = TinyModel(GetParam(), 11);
  std::unique_ptr<Generator> g = MakeGenerator(*model, nullptr);
  const int V = model->config().vocab_size;
  // 3 + 13 = the model's 16 positions; windows (Qwen2, Mistral: 5) are shorter.
  const std::vector<int32_t> prompt = {7, 30, 2};
  ExpectCacheMatchesRecompute(*g, prompt, 13, V);
  // The uncached step's logits are the full forward's last row.
  absl::StatusOr<Generation> full = g->Generate(prompt, Greedy(13, false));
  ASSERT_TRUE(full.ok());
  std::vector<int32_t> sequence = prompt;
  for (int s = 0; s < 13; ++s) {
    const int T = static_cast<int>(sequence.size());
    std::vector<float> all(static_cast<size_t>(T) * V);
    ASSERT_TRUE(model->Logits(sequence, 1, T, all.data()).ok());
    const std::vector<float> last(all.end() - V, all.end());
    std::vector<float> mine(full->logits.begin() + s * V, full->logits.begin() + (s + 1) * V);
    EXPECT_LE(StepError(mine, last, 0, V), 1e-6) << "step " << s;
    EXPECT_EQ(full->tokens[s], Argmax(last)) << "step " << s;
    sequence.push_back(full->tokens[s]);
  }
}

TEST_P(GeneratorFamilyTest, CacheOverAPrefixAndLoraEqualsRecomputing) {
  std::unique_ptr<Transformer> model = TinyModel(GetParam(), 12);
  const int V = model->config().vocab_size;
  std::unique_ptr<Generator> g = MakeGenerator(*model, nullptr);
  const std::vector<int32_t> prompt = {4, 9, 40};
  const std::vector<int32_t> batch = {1, 2, 3, 4, 5, 6, 7, 8};
  const std::vector<int32_t> targets = {2, 3, 4, 5, 6, 7, 8, 9};

  // A PEFT prefix of 3 rows: the cache holds them first.
  auto prefix = PrefixAdapters::Create(model->layout(), 3);
  ASSERT_TRUE(prefix.ok()) << prefix.status();
  (*prefix)->Initialize(5);
  model->SetAdapters(prefix->get(), /*base_frozen=*/true);
  const float loss_before = *model->Loss(batch, targets, 1, 8);
  {
    SCOPED_TRACE("prefix");
    ExpectCacheMatchesRecompute(*g, prompt, 10, V);  // 3 + 3 + 10 = 16 positions.
  }
  // The model's adapters are attached again as they were, and compute as before.
  EXPECT_EQ(model->adapters(), prefix->get());
  EXPECT_TRUE(model->base_frozen());
  EXPECT_EQ(model->PrefixLength(), 3);
  EXPECT_EQ(*model->Loss(batch, targets, 1, 8), loss_before);
  // The prefix changes what is generated.
  absl::StatusOr<Generation> with_prefix = g->Generate(prompt, Greedy(10));
  model->SetAdapters(nullptr, false);
  absl::StatusOr<Generation> without = g->Generate(prompt, Greedy(10));
  ASSERT_TRUE(with_prefix.ok() && without.ok());
  EXPECT_NE(with_prefix->logits, without->logits);

  // LoRA on every linear layer with non-zero B.
  LoraConfig config;
  config.r = 2;
  config.alpha = 4;
  config.target_modules = {"all-linear"};
  auto lora = LoraAdapters::Create(model->layout(), config);
  ASSERT_TRUE(lora.ok()) << lora.status();
  (*lora)->Initialize(6);
  std::mt19937 rng(6);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  for (float& w : (*lora)->weights()) w += noise(rng);
  model->SetAdapters(lora->get(), /*base_frozen=*/false);
  {
    SCOPED_TRACE("lora");
    ExpectCacheMatchesRecompute(*g, prompt, 13, V);
  }
  EXPECT_EQ(model->adapters(), lora->get());
  EXPECT_FALSE(model->base_frozen());
  absl::StatusOr<Generation> with_lora = g->Generate(prompt, Greedy(10));
  ASSERT_TRUE(with_lora.ok());
  EXPECT_NE(with_lora->logits, without->logits);
}

TEST_P(GeneratorFamilyTest, SamplingIsFixedByTheSeed) {
  std::unique_ptr<Transformer> model = TinyModel(GetParam(), 13);
  std::unique_ptr<Generator> g = MakeGenerator(*model, nullptr);
  const std::vector<int32_t> prompt = {3, 14, 15};
  auto tokens = [&](const GenerateOptions& o) {
    absl::StatusOr<Generation> out = g->Generate(prompt, o);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? out->tokens : std::vector<int32_t>();
  };
  const std::vector<int32_t> first = tokens(Sampled(13, 1.5f, 5));
  ASSERT_EQ(first.size(), 13u);
  EXPECT_EQ(tokens(Sampled(13, 1.5f, 5)), first);
  GenerateOptions uncached = Sampled(13, 1.5f, 5);
  uncached.use_cache = false;
  EXPECT_EQ(tokens(uncached), first);
  // Any thread count.
  for (int threads : {1, 2, 3}) {
    ThreadPool::Global().SetThreads(threads);
    kernels::SetBlasThreads(threads);
    EXPECT_EQ(tokens(Sampled(13, 1.5f, 5)), first) << threads << " threads";
  }
  // Other seeds, other tokens.
  EXPECT_NE(tokens(Sampled(13, 1.5f, 6)), first);
  EXPECT_NE(tokens(Sampled(13, 1.5f, 7)), first);
  // top_k = 1 and a tiny temperature are greedy decoding.
  const std::vector<int32_t> greedy = tokens(Greedy(13));
  GenerateOptions top1 = Sampled(13, 1.5f, 5);
  top1.sampling.top_k = 1;
  EXPECT_EQ(tokens(top1), greedy);
  EXPECT_EQ(tokens(Sampled(13, 1e-4f, 5)), greedy);
  // A nucleus this small keeps only the most likely token.
  GenerateOptions nucleus = Sampled(13, 1.0f, 5);
  nucleus.sampling.top_p = 1e-6f;
  EXPECT_EQ(tokens(nucleus), greedy);
  // vocab_limit: no id at or above it.
  GenerateOptions limited = Sampled(13, 3.0f, 8);
  limited.vocab_limit = 10;
  for (int32_t t : tokens(limited)) EXPECT_LT(t, 10);
}

TEST_P(GeneratorFamilyTest, StopTokensStopStringsAndMaxNewTokensEndDecoding) {
  std::unique_ptr<Transformer> model = TinyModel(GetParam(), 14);
  const LetterTokenizer tokenizer;
  std::unique_ptr<Generator> g = MakeGenerator(*model, &tokenizer);
  const std::vector<int32_t> prompt = {20, 21, 5};
  absl::StatusOr<Generation> all = g->Generate(prompt, Greedy(13));
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->tokens.size(), 13u);
  EXPECT_EQ(all->finish, FinishReason::kLength);
  EXPECT_EQ(all->text, *tokenizer.Decode(all->tokens));

  // max_new_tokens bounds it.
  absl::StatusOr<Generation> four = g->Generate(prompt, Greedy(4));
  ASSERT_TRUE(four.ok());
  EXPECT_EQ(four->tokens, std::vector<int32_t>(all->tokens.begin(), all->tokens.begin() + 4));
  EXPECT_EQ(four->finish, FinishReason::kLength);

  // A stop token ends it at its first occurrence; the text leaves it out.
  GenerateOptions stop_token = Greedy(13);
  stop_token.stop_token_ids = {52, all->tokens[6]};
  const size_t at =
      std::find(all->tokens.begin(), all->tokens.end(), all->tokens[6]) - all->tokens.begin();
  absl::StatusOr<Generation> stopped = g->Generate(prompt, stop_token);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->finish, FinishReason::kStopToken);
  EXPECT_EQ(stopped->tokens,
            std::vector<int32_t>(all->tokens.begin(), all->tokens.begin() + at + 1));
  EXPECT_EQ(stopped->text, all->text.substr(0, at));

  // A stop string spanning tokens ends it once decoded; the text ends before the earliest.
  GenerateOptions stop_string = Greedy(13);
  const std::string later = all->text.substr(9, 3), earlier = all->text.substr(5, 2);
  stop_string.stop_strings = {later, earlier};
  // Decoding stops once the text holds either; it then ends before the earliest it holds.
  const size_t completed = std::min(all->text.find(later) + 3, all->text.find(earlier) + 2);
  const std::string seen = all->text.substr(0, completed);
  const size_t pos = std::min(seen.find(later), seen.find(earlier));
  absl::StatusOr<Generation> cut = g->Generate(prompt, stop_string);
  ASSERT_TRUE(cut.ok()) << cut.status();
  EXPECT_EQ(cut->finish, FinishReason::kStopString);
  EXPECT_EQ(cut->text, all->text.substr(0, pos));
  EXPECT_EQ(cut->tokens.size(), completed);
  // A stop string never produced changes nothing.
  stop_string.stop_strings = {"not in the vocabulary"};
  cut = g->Generate(prompt, stop_string);
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut->tokens, all->tokens);
  EXPECT_EQ(cut->finish, FinishReason::kLength);
}

TEST_P(GeneratorFamilyTest, RefusesWhatTheModelCannotHold) {
  std::unique_ptr<Transformer> model = TinyModel(GetParam(), 15);
  std::unique_ptr<Generator> g = MakeGenerator(*model, nullptr);
  const std::vector<int32_t> ten(10, 1);
  absl::Status s = g->Generate(ten, Greedy(7)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("prompt of 10 tokens"));
  EXPECT_THAT(s.message(), HasSubstr("max_new_tokens 7"));
  EXPECT_THAT(s.message(), HasSubstr("maximum sequence length 16"));
  EXPECT_TRUE(g->Generate(ten, Greedy(6)).ok());
  // The prefix takes positions.
  auto prefix = PrefixAdapters::Create(model->layout(), 3);
  ASSERT_TRUE(prefix.ok());
  model->SetAdapters(prefix->get(), true);
  s = g->Generate(ten, Greedy(6)).status();
  EXPECT_THAT(s.message(), HasSubstr("prefix of 3"));
  EXPECT_TRUE(g->Generate(ten, Greedy(3)).ok());
  model->SetAdapters(nullptr, false);

  EXPECT_THAT(g->Generate({}, Greedy(3)).status().message(), HasSubstr("prompt has no tokens"));
  EXPECT_THAT(g->Generate(std::vector<int32_t>{1, 53}, Greedy(3)).status().message(),
              HasSubstr("prompt[1] = 53"));
  EXPECT_THAT(g->Generate(ten, Greedy(0)).status().message(), HasSubstr("max_new_tokens"));
  GenerateOptions bad = Greedy(3);
  bad.sampling.top_p = 2.0f;
  EXPECT_THAT(g->Generate(ten, bad).status().message(), HasSubstr("top_p"));
  bad = Greedy(3);
  bad.stop_strings = {"x"};
  EXPECT_THAT(g->Generate(ten, bad).status().message(), HasSubstr("tokenizer"));
}

TEST_P(GeneratorFamilyTest, StreamLogitsAreOneRowOfTheLogits) {
  std::unique_ptr<Transformer> model = TinyModel(GetParam(), 16);
  const int V = model->config().vocab_size, T = 5;
  const std::vector<int32_t> tokens = {1, 8, 27, 3, 50, 2, 9, 12, 0, 44};  // B = 2.
  std::vector<float> all(tokens.size() * V);
  ASSERT_TRUE(model->Logits(tokens, 2, T, all.data()).ok());
  const float* w = model->params().data();
  ASSERT_TRUE(model->BeginForward(w, tokens, 2, T, 1).ok());
  for (int l = 0; l < model->config().n_layer; ++l) {
    model->BlockForward(l, w + model->layout().BlockBegin(l), 1);
  }
  std::vector<float> row(V);
  for (int r : {0, 3, 7, 9}) {
    ASSERT_TRUE(model->StreamLogits(w, r, 1, row.data()).ok());
    const std::vector<float> expected(all.begin() + r * V, all.begin() + (r + 1) * V);
    EXPECT_LE(StepError(row, expected, 0, V), 1e-6) << "row " << r;
  }
  EXPECT_EQ(model->StreamLogits(w, 10, 1, row.data()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(model->StreamLogits(w, 0, 0, row.data()).code(), absl::StatusCode::kFailedPrecondition);
  model->AbandonForward(1);
  EXPECT_EQ(model->StreamLogits(w, 0, 1, row.data()).code(), absl::StatusCode::kFailedPrecondition);
}

INSTANTIATE_TEST_SUITE_P(Families, GeneratorFamilyTest,
                         ::testing::ValuesIn(testing_models::AllFamilies()),
                         [](const ::testing::TestParamInfo<ModelFamily>& info) {
                           return std::string(ModelFamilyName(info.param));
                         });

}  // namespace
}  // namespace strata
