// Greedy decoding against the independent PyTorch reference, every family, with no adapters, a
// PEFT prefix and LoRA: the reference (testing/torch_generate.py) recomputes the growing
// sequence at every step and takes the argmax of the last position; Strata's cached decoding
// must choose the same token at every step, from logits within the parity tests' bound
// (|diff| <= 2e-5 * (1 + max|logit|)). One python process serves every case. Skips when Debian's
// python3-torch is not installed.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "runtime/generate/generator.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/model/testing/torch_parity.h"
#include "runtime/peft/lora_adapters.h"
#include "runtime/peft/peft_checkpoint.h"
#include "runtime/peft/prefix_adapters.h"
#include "runtime/testing/tiny_models.h"
#include "storage/safetensors/safetensors.h"

namespace strata {
namespace {

constexpr char kScript[] = "runtime/generate/testing/torch_generate.py";
constexpr int kSteps = 10;

enum class Attached { kNone, kPrefix, kLora };

struct Case {
  ModelFamily family;
  Attached attached;
  std::string dir;
  std::vector<int32_t> prompt;
  std::unique_ptr<Transformer> model;
  std::unique_ptr<TrainableAdapters> adapters;
};

std::string Name(const Case& c) {
  const char* kinds[] = {"base", "prefix", "lora"};
  return absl::StrCat(ModelFamilyName(c.family), "_", kinds[static_cast<int>(c.attached)]);
}

// A scaled tiny model of `family` saved to its directory, with its adapters beside it.
void Prepare(Case& c, uint32_t seed) {
  auto model = Transformer::Create(testing_models::Tiny(c.family, 3));
  ASSERT_TRUE(model.ok()) << model.status();
  c.model = *std::move(model);
  c.model->InitializeParameters(seed);
  testing_parity::ScaleParameters(*c.model, seed);
  ASSERT_TRUE(SaveHfCheckpoint(*c.model, c.dir).ok());
  std::mt19937 rng(seed);
  if (c.attached == Attached::kPrefix) {
    auto prefix = PrefixAdapters::Create(c.model->layout(), 2);
    ASSERT_TRUE(prefix.ok()) << prefix.status();
    (*prefix)->Initialize(seed);
    c.adapters = *std::move(prefix);
  } else if (c.attached == Attached::kLora) {
    LoraConfig config;
    config.r = 2;
    config.alpha = 3;
    config.target_modules = {"all-linear"};
    auto lora = LoraAdapters::Create(c.model->layout(), config);
    ASSERT_TRUE(lora.ok()) << lora.status();
    (*lora)->Initialize(seed);
    std::normal_distribution<float> noise(0.0f, 0.3f);
    for (float& w : (*lora)->weights()) w += noise(rng);  // B non-zero.
    c.adapters = *std::move(lora);
  }
  if (c.adapters != nullptr) {
    ASSERT_TRUE(SaveAdapters(*c.adapters, c.model->config(), c.dir).ok());
    c.model->SetAdapters(c.adapters.get(), /*base_frozen=*/true);
  }
  for (int i = 0; i < 3; ++i) {
    c.prompt.push_back(static_cast<int32_t>(rng() % c.model->config().vocab_size));
  }
}

TEST(GeneratorTorchParityTest, GreedyDecodingMatchesThePyTorchReferenceEveryFamily) {
  std::string why;
  if (!testing_parity::TorchAvailable(&why)) GTEST_SKIP() << "python3-torch is missing: " << why;
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::vector<Case> cases;
  for (ModelFamily family : testing_models::AllFamilies()) {
    for (Attached attached : {Attached::kNone, Attached::kPrefix, Attached::kLora}) {
      Case c;
      c.family = family;
      c.attached = attached;
      c.dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/generate_", Name(c));
      cases.push_back(std::move(c));
    }
  }
  std::vector<std::string> args;
  for (size_t i = 0; i < cases.size(); ++i) {
    Prepare(cases[i], 300 + static_cast<uint32_t>(i));
    if (HasFatalFailure()) return;
    args.push_back(absl::StrCat("--case=", cases[i].dir, ":", absl::StrJoin(cases[i].prompt, ","),
                                ":", kSteps));
  }
  const std::string command =
      absl::StrCat(testing_parity::kPython, " ", kScript, " ", absl::StrJoin(args, " "));
  ASSERT_EQ(std::system(command.c_str()), 0) << command;

  for (Case& c : cases) {
    SCOPED_TRACE(Name(c));
    absl::StatusOr<SafetensorsFile> out =
        SafetensorsFile::Open(c.dir + "/torch_generate.safetensors");
    ASSERT_TRUE(out.ok()) << out.status();
    const std::vector<float> ref_tokens = testing_parity::ReadOutput(*out, "tokens");
    const std::vector<float> ref_logits = testing_parity::ReadOutput(*out, "logits");
    const int V = c.model->config().vocab_size;
    ASSERT_EQ(ref_tokens.size(), static_cast<size_t>(kSteps));
    ASSERT_EQ(ref_logits.size(), static_cast<size_t>(kSteps) * V);

    Generator::Options o;
    o.model = c.model.get();
    auto generator = Generator::Create(o);
    ASSERT_TRUE(generator.ok());
    GenerateOptions greedy;
    greedy.max_new_tokens = kSteps;
    greedy.keep_logits = true;
    absl::StatusOr<Generation> got = (*generator)->Generate(c.prompt, greedy);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->tokens.size(), static_cast<size_t>(kSteps));
    double worst = 0;
    for (int s = 0; s < kSteps; ++s) {
      EXPECT_EQ(got->tokens[s], static_cast<int32_t>(ref_tokens[s])) << "step " << s;
      double diff = 0, scale = 0;
      for (int v = 0; v < V; ++v) {
        const double ref = ref_logits[s * V + v];
        diff = std::max(diff, std::fabs(got->logits[s * V + v] - ref));
        scale = std::max(scale, std::fabs(ref));
      }
      EXPECT_LE(diff / (1 + scale), 2e-5) << "step " << s;
      worst = std::max(worst, diff / (1 + scale));
    }
    std::printf("measured %s: tokens %s, logits %.2e x (1 + max|logit|)\n", Name(c).c_str(),
                absl::StrJoin(got->tokens, ",").c_str(), worst);
  }
}

}  // namespace
}  // namespace strata
