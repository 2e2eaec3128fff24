// `strata-train generate` through the real binary, on a tiny LLaMA saved as a Hugging Face
// checkpoint (byte vocabulary, so the byte tokenizer is the default): a seed fixes the sampled
// text (twice the same; another seed, other text), the printed text is the library Generator's,
// with a prefix adapter attached too, a stop string cuts the text before it, and bad flags (and
// the command's flags without the command) are refused naming the flag.
#include "services/trainer/generate_command.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/data/tokenizer.h"
#include "runtime/generate/generator.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/peft/peft_checkpoint.h"
#include "runtime/peft/prefix_adapters.h"
#include "tests/testing/subprocess.h"

namespace strata {
namespace {

using ::strata::testing::ProcessResult;
using ::strata::testing::RunProcess;
using ::strata::testing::TestTmpDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kTrain[] = "services/trainer/strata-train";

ModelConfig TinyLlama() {
  ModelConfig c;
  c.family = ModelFamily::kLlama;
  c.vocab_size = 257;
  c.max_seq_len = 32;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_kv_head = 2;
  c.d_model = 32;
  c.d_ff = 64;
  c.tie_embeddings = true;
  return c;
}

class GenerateCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestTmpDir() + "/generate_model";
    auto model = Transformer::Create(TinyLlama());
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
    model_->InitializeParameters(3);
    for (float& w : model_->params()) w *= 4.0f;  // Peakier logits than the initialization's.
    ASSERT_TRUE(SaveHfCheckpoint(*model_, dir_).ok());
  }

  ProcessResult Generate(const std::vector<std::string>& flags, bool command = true) {
    std::vector<std::string> argv = {kTrain};
    if (command) argv.push_back("generate");
    argv.push_back("--threads=1");
    argv.insert(argv.end(), flags.begin(), flags.end());
    absl::StatusOr<ProcessResult> result = RunProcess(argv, TestTmpDir(), absl::Seconds(60));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : ProcessResult{};
  }

  // What the library generates for `prompt` on the saved model (stopping at the byte
  // tokenizer's end-of-text, as the command does).
  Generation Library(const std::string& prompt, GenerateOptions options) {
    Generator::Options o;
    o.model = model_.get();
    o.tokenizer = &tokenizer_;
    auto generator = Generator::Create(o);
    EXPECT_TRUE(generator.ok());
    options.stop_token_ids = {tokenizer_.eos_id()};
    absl::StatusOr<Generation> out = (*generator)->Generate(*tokenizer_.Encode(prompt), options);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : Generation{};
  }

  std::string dir_;
  std::unique_ptr<Transformer> model_;
  ByteTokenizer tokenizer_;
};

TEST_F(GenerateCommandTest, ASeedFixesTheTextAndTheTextIsTheLibrarys) {
  const std::vector<std::string> flags = {"--init_from=" + dir_,
                                          "--prompt=Once upon a",
                                          "--max_new_tokens=16",
                                          "--temperature=0.8",
                                          "--top_k=40",
                                          "--top_p=0.95",
                                          "--seed=7"};
  const ProcessResult first = Generate(flags);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const ProcessResult second = Generate(flags);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(first.out, second.out);
  EXPECT_THAT(first.err, HasSubstr("the byte tokenizer"));

  GenerateOptions options;
  options.max_new_tokens = 16;
  options.sampling.temperature = 0.8f;
  options.sampling.top_k = 40;
  options.sampling.top_p = 0.95f;
  options.sampling.seed = 7;
  const Generation expected = Library("Once upon a", options);
  ASSERT_FALSE(expected.text.empty());
  EXPECT_EQ(first.out, expected.text + "\n");

  std::vector<std::string> other = flags;
  other.back() = "--seed=8";
  const ProcessResult reseeded = Generate(other);
  ASSERT_EQ(reseeded.exit_code, 0) << reseeded.err;
  EXPECT_NE(reseeded.out, first.out);

  // Greedy (the default) is the library's greedy text.
  const ProcessResult greedy =
      Generate({"--init_from=" + dir_, "--prompt=Once upon a", "--max_new_tokens=12"});
  ASSERT_EQ(greedy.exit_code, 0) << greedy.err;
  GenerateOptions greedy_options;
  greedy_options.max_new_tokens = 12;
  EXPECT_EQ(greedy.out, Library("Once upon a", greedy_options).text + "\n");
}

TEST_F(GenerateCommandTest, APrefixAdapterAndAStopString) {
  auto prefix = PrefixAdapters::Create(model_->layout(), 4);
  ASSERT_TRUE(prefix.ok());
  (*prefix)->Initialize(9);
  const std::string adapter = TestTmpDir() + "/generate_prefix";
  ASSERT_TRUE(SaveAdapters(**prefix, model_->config(), adapter).ok());
  const ProcessResult with_prefix = Generate(
      {"--init_from=" + dir_, "--adapter=" + adapter, "--prompt=abc", "--max_new_tokens=10"});
  ASSERT_EQ(with_prefix.exit_code, 0) << with_prefix.err;
  GenerateOptions greedy;
  greedy.max_new_tokens = 10;
  model_->SetAdapters(prefix->get(), true);
  EXPECT_EQ(with_prefix.out, Library("abc", greedy).text + "\n");
  model_->SetAdapters(nullptr, false);
  const ProcessResult without =
      Generate({"--init_from=" + dir_, "--prompt=abc", "--max_new_tokens=10"});
  ASSERT_EQ(without.exit_code, 0) << without.err;
  EXPECT_NE(without.out, with_prefix.out) << "the adapter changed nothing";
  // 4 + 3 + 26 > 32 positions: refused naming the prefix.
  const ProcessResult too_long = Generate(
      {"--init_from=" + dir_, "--adapter=" + adapter, "--prompt=abc", "--max_new_tokens=26"});
  EXPECT_EQ(too_long.exit_code, 2);
  EXPECT_THAT(too_long.err, HasSubstr("--max_new_tokens=26"));
  EXPECT_THAT(too_long.err, HasSubstr("prefix of 4: at most 25 new tokens fit"));

  // A stop string taken from the sampled text: the text printed ends before it.
  GenerateOptions sampled;
  sampled.max_new_tokens = 20;
  sampled.sampling.temperature = 1.0f;
  sampled.sampling.seed = 5;
  const std::string text = Library("xyz", sampled).text;
  ASSERT_GE(text.size(), 8u) << "the sampled text ended early";
  std::string stop = text.substr(5, 2), escaped;
  ASSERT_EQ(stop.find('\0'), std::string::npos);
  for (char c : stop) {
    if (c == ',' || c == '\\') escaped += '\\';
    escaped += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  const ProcessResult cut = Generate({"--init_from=" + dir_, "--prompt=xyz", "--max_new_tokens=20",
                                      "--temperature=1", "--seed=5", "--stop=zzzz," + escaped});
  ASSERT_EQ(cut.exit_code, 0) << cut.err;
  EXPECT_EQ(cut.out, text.substr(0, text.find(stop)) + "\n");
  EXPECT_THAT(cut.err, HasSubstr("stopped by stop_string"));
}

TEST_F(GenerateCommandTest, BadFlagsAreRefusedByName) {
  const std::string model = "--init_from=" + dir_;
  struct Case {
    std::vector<std::string> flags;
    int exit_code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{model, "--prompt=hi", "--top_p=2", "--temperature=1"}, 2, "--top_p=2"},
      {{model, "--prompt=hi", "--top_k=5"}, 2, "--top_k filters sampling"},
      {{model, "--prompt=hi", "--temperature=-1"}, 2, "--temperature=-1"},
      {{model, "--prompt=hi", "--max_new_tokens=0"}, 2, "--max_new_tokens=0"},
      {{model, "--prompt=hi", "--max_new_tokens=40"}, 2, "at most 30 new tokens fit"},
      {{model, "--prompt=hi", "--steps=5", "--lr=0.1"}, 2, "--lr, --steps: not a flag of"},
      {{model, "--prompt=hi", "--stop=a,,b"}, 2, "--stop holds an empty"},
      {{model, "--prompt="}, 2, "--prompt is empty"},
      {{"--prompt=hi"}, 2, "generate needs --init_from"},
      {{model, "--prompt=hi", "--adapter=/nonexistent-adapter"},
       1,
       "--adapter=/nonexistent-adapter"},
      {{"--init_from=/nonexistent-model", "--prompt=hi"}, 1, "--init_from=/nonexistent-model"},
      {{model, "--prompt=hi", "--tokenizer=/nonexistent.json"}, 1, "--tokenizer=/nonexistent.json"},
  };
  for (const Case& c : cases) {
    const ProcessResult r = Generate(c.flags);
    EXPECT_EQ(r.exit_code, c.exit_code) << c.message << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message));
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  // An extra word, and the command's flags without the command (nothing is trained).
  const ProcessResult extra = Generate({model, "--prompt=hi", "more"});
  EXPECT_EQ(extra.exit_code, 2);
  EXPECT_THAT(extra.err, HasSubstr("unexpected argument \"more\""));
  const ProcessResult stray = Generate({"--prompt=hi", "--steps=1"}, /*command=*/false);
  EXPECT_NE(stray.exit_code, 0);
  EXPECT_THAT(stray.err, HasSubstr("--prompt: a flag of `strata-train generate`"));
  const ProcessResult word = Generate({"generat"}, /*command=*/false);
  EXPECT_EQ(word.exit_code, 2);
  EXPECT_THAT(word.err, HasSubstr("unexpected argument \"generat\""));
}

TEST(ParseStopListTest, CommasSeparateAndEscapesEscape) {
  EXPECT_THAT(*ParseStopList("a\\,b,c\\n,\\t\\\\"), ElementsAre("a,b", "c\n", "\t\\"));
  EXPECT_THAT(*ParseStopList("###"), ElementsAre("###"));
  EXPECT_TRUE(ParseStopList("")->empty());
  EXPECT_THAT(ParseStopList("a,").status().message(), HasSubstr("empty stop string"));
  EXPECT_THAT(ParseStopList("a\\q").status().message(), HasSubstr("\\q is not an escape"));
  EXPECT_THAT(ParseStopList("a\\").status().message(), HasSubstr("lone backslash"));
}

}  // namespace
}  // namespace strata
