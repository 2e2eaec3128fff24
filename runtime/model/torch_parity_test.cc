// Strata's CPU transformer against an independent PyTorch implementation of both families
// (runtime/model/testing/torch_reference.py), on random small configs, from the same
// safetensors checkpoint: logits, loss and every parameter gradient must agree within
//   logits:    |diff| <= 2e-5 * (1 + max|logit|)
//   loss:      relative 1e-5
//   gradients: per tensor, max|diff| <= 1e-4 * max|grad| + 1e-6
// Skips when Debian's python3-torch is not installed.
#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/model/transformer.h"
#include "storage/safetensors/safetensors.h"

namespace strata {
namespace {

constexpr char kPython[] = "/usr/bin/python3";
constexpr char kScript[] = "runtime/model/testing/torch_compare.py";

bool TorchAvailable(std::string* why) {
  const std::string command = absl::StrCat(kPython, " -c 'import torch' 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    *why = "cannot run python3";
    return false;
  }
  char buf[512];
  std::string out;
  while (fgets(buf, sizeof(buf), pipe) != nullptr) out += buf;
  const int rc = pclose(pipe);
  *why = out;
  return rc == 0;
}

struct Case {
  ModelConfig config;
  int B, T;
  uint64_t seed;
};

Case RandomCase(ModelFamily family, uint32_t seed) {
  std::mt19937 rng(seed);
  auto pick = [&rng](int lo, int hi) { return lo + static_cast<int>(rng() % (hi - lo + 1)); };
  Case c;
  ModelConfig& m = c.config;
  m.family = family;
  m.vocab_size = pick(20, 90);
  m.n_layer = pick(1, 3);
  m.n_head = pick(1, 4);
  m.n_kv_head =
      family == ModelFamily::kLlama ? (m.n_head % 2 == 0 ? m.n_head / 2 : m.n_head) : m.n_head;
  m.d_model = m.n_head * 2 * pick(2, 5);
  m.d_ff = pick(8, 50);
  m.max_seq_len = pick(12, 24);
  m.norm_eps = family == ModelFamily::kGpt2 ? 1e-5f : 1e-6f;
  m.rope_theta = family == ModelFamily::kLlama ? static_cast<float>(pick(100, 20000)) : 1e4f;
  m.tie_embeddings = family == ModelFamily::kGpt2 || rng() % 2 == 0;
  if (family == ModelFamily::kLlama && seed % 3 == 1) {  // Linear position interpolation.
    m.rope_scaling.kind = RopeScaling::Kind::kLinear;
    m.rope_scaling.factor = static_cast<float>(pick(2, 8));
  } else if (family == ModelFamily::kLlama && seed % 3 == 2) {  // Llama 3.1's bands.
    m.rope_scaling.kind = RopeScaling::Kind::kLlama3;
    m.rope_scaling.factor = 8.0f;
    m.rope_scaling.low_freq_factor = 1.0f;
    m.rope_scaling.high_freq_factor = 4.0f;
    m.rope_scaling.original_max_position_embeddings = pick(8, 64);
  }
  c.B = pick(1, 3);
  c.T = pick(2, m.max_seq_len);
  c.seed = seed;
  return c;
}

class TorchParityTest : public ::testing::TestWithParam<std::tuple<ModelFamily, int>> {};

TEST_P(TorchParityTest, LogitsLossAndGradientsMatchPyTorch) {
  std::string why;
  if (!TorchAvailable(&why)) GTEST_SKIP() << "python3-torch is not available: " << why;
  const auto [family, index] = GetParam();
  const Case c = RandomCase(family, 1000 * static_cast<int>(family) + index);
  SCOPED_TRACE(absl::StrCat("family ", ModelFamilyName(family), " V=", c.config.vocab_size,
                            " L=", c.config.n_layer, " H=", c.config.n_head, "/",
                            c.config.n_kv_head, " C=", c.config.d_model, " F=", c.config.d_ff,
                            " B=", c.B, " T=", c.T, " tied=", c.config.tie_embeddings));
  auto model = Transformer::Create(c.config);
  ASSERT_TRUE(model.ok()) << model.status();
  Transformer& m = **model;
  m.InitializeParameters(c.seed);
  std::mt19937 rng(c.seed);
  std::normal_distribution<float> noise(0.0f, 0.5f);
  for (const TensorInfo& t : m.layout().tensors()) {
    for (int64_t i = 0; i < t.numel; ++i) {
      float& p = m.params()[t.offset + i];
      p = t.role == TensorRole::kNorm ? 1.0f + noise(rng) * 0.3f : p * 8.0f + 0.01f * noise(rng);
    }
  }
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir =
      absl::StrCat(tmp ? tmp : "/tmp", "/parity_", static_cast<int>(family), "_", index);
  ASSERT_TRUE(SaveHfCheckpoint(m, dir).ok());

  std::vector<int32_t> tokens(c.B * c.T), targets(c.B * c.T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % c.config.vocab_size);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % c.config.vocab_size);
  targets[0] = -100;
  const std::string command = absl::StrCat(kPython, " ", kScript, " --dir=", dir, " --batch=", c.B,
                                           " --seq=", c.T, " --tokens=", absl::StrJoin(tokens, ","),
                                           " --targets=", absl::StrJoin(targets, ","));
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  absl::StatusOr<SafetensorsFile> out = SafetensorsFile::Open(dir + "/torch_out.safetensors");
  ASSERT_TRUE(out.ok()) << out.status();
  auto read = [&](const std::string& name) {
    const SafetensorsEntry* e = out->header().Find(name);
    EXPECT_NE(e, nullptr) << name;
    std::vector<float> v(e ? e->numel() : 0);
    if (e != nullptr) {
      EXPECT_TRUE(out->ReadF32(*e, v.data()).ok());
    }
    return v;
  };

  // Logits.
  const std::vector<float> ref_logits = read("logits");
  std::vector<float> logits(ref_logits.size());
  ASSERT_TRUE(m.Logits(tokens, c.B, c.T, logits.data()).ok());
  float max_logit = 0;
  for (float v : ref_logits) max_logit = std::max(max_logit, std::fabs(v));
  for (size_t i = 0; i < logits.size(); ++i) {
    ASSERT_NEAR(logits[i], ref_logits[i], 2e-5 * (1 + max_logit)) << "logit " << i;
  }

  // Loss and gradients.
  m.ZeroGrads();
  absl::StatusOr<float> loss = m.ForwardBackward(tokens, targets, c.B, c.T);
  ASSERT_TRUE(loss.ok());
  const float ref_loss = read("loss")[0];
  EXPECT_NEAR(*loss, ref_loss, 1e-5 * std::fabs(ref_loss));
  for (const TensorInfo& t : m.layout().tensors()) {
    std::vector<float> ref = read("grad/" + t.name);
    ASSERT_EQ(static_cast<int64_t>(ref.size()), t.numel) << t.name;
    const float* g = m.grads().data() + t.offset;
    double max_ref = 0, max_diff = 0;
    for (int64_t i = 0; i < t.numel; ++i) {
      // The reference is in checkpoint layout: GPT-2 Conv1D weights are (in, out).
      float r = ref[i];
      if (t.transposed_in_checkpoint) {
        const int64_t rows = t.shape[0], cols = t.shape[1];
        r = ref[(i % cols) * rows + i / cols];
      }
      max_ref = std::max(max_ref, std::fabs(static_cast<double>(r)));
      max_diff = std::max(max_diff, std::fabs(static_cast<double>(g[i]) - r));
    }
    EXPECT_LE(max_diff, 1e-4 * max_ref + 1e-6) << t.name << " max|grad| " << max_ref;
  }
}

INSTANTIATE_TEST_SUITE_P(RandomConfigs, TorchParityTest,
                         ::testing::Combine(::testing::Values(ModelFamily::kGpt2,
                                                              ModelFamily::kLlama),
                                            ::testing::Range(0, 4)),
                         [](const ::testing::TestParamInfo<std::tuple<ModelFamily, int>>& info) {
                           return absl::StrCat(ModelFamilyName(std::get<0>(info.param)), "_",
                                               std::get<1>(info.param));
                         });

}  // namespace
}  // namespace strata
