#include "runtime/data/dataset.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

std::string Write(const std::string& name, const std::string& bytes) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(tmp ? tmp : "/tmp") + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

TEST(TokenCorpusTest, ReadsNanoGptAndLlmcTokenFiles) {
  std::string raw;
  for (uint16_t t : {1, 2, 3, 65535}) raw.append(reinterpret_cast<const char*>(&t), 2);
  auto corpus = TokenCorpus::Load({Write("a.bin", raw)}, CorpusFormat::kAuto, nullptr, "", 70000);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_THAT(corpus->tokens(), ::testing::ElementsAre(1, 2, 3, 65535));

  std::string llmc(1024, '\0');
  const int32_t header[3] = {20240520, 1, 3};
  std::memcpy(llmc.data(), header, sizeof(header));
  for (uint16_t t : {7, 8, 9}) llmc.append(reinterpret_cast<const char*>(&t), 2);
  corpus = TokenCorpus::Load({Write("b.bin", llmc)}, CorpusFormat::kTokensU16, nullptr, "", 10);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_THAT(corpus->tokens(), ::testing::ElementsAre(7, 8, 9));
}

TEST(TokenCorpusTest, RejectsBadFilesByNameAndPosition) {
  EXPECT_THAT(
      TokenCorpus::Load({Write("odd.bin", "abc")}, CorpusFormat::kTokensU16, nullptr, "", 10)
          .status()
          .message(),
      HasSubstr("odd.bin: 3 bytes"));
  std::string raw;
  for (uint16_t t : {1, 500}) raw.append(reinterpret_cast<const char*>(&t), 2);
  EXPECT_THAT(TokenCorpus::Load({Write("big.bin", raw)}, CorpusFormat::kTokensU16, nullptr, "", 100)
                  .status()
                  .message(),
              HasSubstr("token 1 = 500"));
  ByteTokenizer bytes;
  const std::string jsonl = Write("d.jsonl", "{\"text\": \"hi\"}\n\n{\"body\": 1}\n");
  EXPECT_THAT(TokenCorpus::Load({jsonl}, CorpusFormat::kAuto, &bytes, "", 257).status().message(),
              HasSubstr("d.jsonl:3: missing field \"text\""));
  EXPECT_THAT(TokenCorpus::Load({Write("e.txt", "x")}, CorpusFormat::kText, nullptr, "", 257)
                  .status()
                  .message(),
              HasSubstr("needs a tokenizer"));
}

TEST(TokenCorpusTest, TokenizesTextAndJsonlWithEndOfTextBetweenDocuments) {
  ByteTokenizer bytes;
  const std::string jsonl = Write("c.jsonl", "{\"text\": \"ab\"}\n{\"text\": \"c\"}\n");
  auto corpus =
      TokenCorpus::Load({jsonl, Write("c.txt", "d")}, CorpusFormat::kAuto, &bytes, "", 257);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_THAT(corpus->tokens(), ::testing::ElementsAre('a', 'b', 256, 'c', 256, 'd', 256));
  EXPECT_NEAR(TokenCorpus::FromTokens({1, 1, 2, 2}).UnigramEntropy(), std::log(2.0), 1e-12);
}

// A tokenizer that puts its BOS before every text: when BOS is EOS (OPT's </s>) it already
// separates documents; otherwise EOS still ends each one (LLaMA-3).
TEST(TokenCorpusTest, BosThatIsEosSeparatesDocumentsOnItsOwn) {
  auto json = [](int bos) {
    return absl::StrCat(
        R"({"added_tokens": [{"id": 3, "content": "<s>"}, {"id": 4, "content": "</s>"}],
      "post_processor": {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "B"}}, {"Sequence": {"id": "A"}}],
        "special_tokens": {"B": {"id": "B", "ids": [)",
        bos, R"(]}}},
      "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}})");
  };
  const std::string jsonl = Write("bos.jsonl", "{\"text\": \"ab\"}\n{\"text\": \"b</s>\"}\n");
  auto opt_like = BpeTokenizer::FromJson(json(4), "opt.json");
  ASSERT_TRUE(opt_like.ok()) << opt_like.status();
  auto corpus = TokenCorpus::Load({jsonl}, CorpusFormat::kJsonl, opt_like->get(), "", 5);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_THAT(corpus->tokens(), ::testing::ElementsAre(4, 0, 1, 4, 1, 4));
  auto llama_like = BpeTokenizer::FromJson(json(3), "llama.json");
  ASSERT_TRUE(llama_like.ok()) << llama_like.status();
  corpus = TokenCorpus::Load({jsonl}, CorpusFormat::kJsonl, llama_like->get(), "", 5);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_THAT(corpus->tokens(), ::testing::ElementsAre(3, 0, 1, 4, 3, 1, 4));
}

TEST(BatchSamplerTest, DeterministicShardedAndResumable) {
  std::vector<int32_t> tokens(1001);
  for (int i = 0; i < 1001; ++i) tokens[i] = i;
  const TokenCorpus corpus = TokenCorpus::FromTokens(tokens);
  BatchSampler::Options options{4, 10, 7, 0, 2};
  auto r0 = BatchSampler::Create(&corpus, options);
  options.rank = 1;
  auto r1 = BatchSampler::Create(&corpus, options);
  ASSERT_TRUE(r0.ok() && r1.ok());
  EXPECT_EQ(r0->windows(), 100);
  std::vector<int32_t> x(40), y(40);
  std::set<int32_t> seen;
  // One epoch over both ranks covers every window exactly once.
  for (int step = 0; step < 12; ++step) {  // 12 steps x 2 ranks x 4 = 96 of 100 windows.
    for (BatchSampler* s : {&*r0, &*r1}) {
      s->Next(absl::MakeSpan(x), absl::MakeSpan(y));
      for (int b = 0; b < 4; ++b) {
        EXPECT_EQ(x[b * 10] % 10, 0);
        EXPECT_TRUE(seen.insert(x[b * 10]).second) << "window served twice";
        for (int t = 0; t < 10; ++t) EXPECT_EQ(y[b * 10 + t], x[b * 10 + t] + 1);
      }
    }
  }
  EXPECT_EQ(seen.size(), 96u);
  // Resuming from a saved position gives the same next batch.
  auto again = BatchSampler::Create(&corpus, options);
  again->set_position(r1->position());
  std::vector<int32_t> a(40), b(40), ya(40), yb(40);
  r1->Next(absl::MakeSpan(a), absl::MakeSpan(ya));
  again->Next(absl::MakeSpan(b), absl::MakeSpan(yb));
  EXPECT_EQ(a, b);
  // A different seed gives a different order.
  options.seed = 8;
  auto other = BatchSampler::Create(&corpus, options);
  std::vector<int32_t> c(40), yc(40);
  other->Next(absl::MakeSpan(c), absl::MakeSpan(yc));
  EXPECT_NE(c, a);
}

TEST(BatchSamplerTest, TooSmallCorpusIsAnError) {
  const TokenCorpus corpus = TokenCorpus::FromTokens(std::vector<int32_t>(30, 1));
  EXPECT_THAT(BatchSampler::Create(&corpus, {4, 10, 0, 0, 1}).status().message(),
              HasSubstr("fewer than one global batch"));
}

TEST(MeanLossOverBatchesTest, AveragesAFixedSetOfAtMostMaxBatches) {
  std::vector<int32_t> tokens(1001);
  for (int i = 0; i < 1001; ++i) tokens[i] = i;
  const TokenCorpus corpus = TokenCorpus::FromTokens(tokens);
  auto first_token = [](absl::Span<const int32_t> x, absl::Span<const int32_t>) {
    return absl::StatusOr<float>(static_cast<float>(x[0]));
  };
  // The same batches as a seed-0 sampler, averaged.
  auto sampler = BatchSampler::Create(&corpus, {4, 10, 0, 0, 1});
  ASSERT_TRUE(sampler.ok());
  std::vector<int32_t> x(40), y(40);
  double expected = 0;
  for (int b = 0; b < 3; ++b) {
    sampler->Next(absl::MakeSpan(x), absl::MakeSpan(y));
    expected += x[0];
  }
  auto mean = MeanLossOverBatches(&corpus, 4, 10, 3, first_token);
  ASSERT_TRUE(mean.ok()) << mean.status();
  EXPECT_EQ(*mean, static_cast<float>(expected / 3));
  // At most windows / batch batches (100 / 4), however many are asked for.
  int calls = 0;
  auto counted = MeanLossOverBatches(&corpus, 4, 10, 1000,
                                     [&](absl::Span<const int32_t>, absl::Span<const int32_t>) {
                                       ++calls;
                                       return absl::StatusOr<float>(1.0f);
                                     });
  ASSERT_TRUE(counted.ok());
  EXPECT_EQ(calls, 25);
  EXPECT_THAT(MeanLossOverBatches(&corpus, 4, 10, 0, first_token).status().message(),
              HasSubstr("eval_batches must be >= 1"));
}

}  // namespace
}  // namespace strata
