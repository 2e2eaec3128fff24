// See torch_parity.h.
#include "runtime/model/testing/torch_parity.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace strata::testing_parity {

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

// Variants by `seed` per family: LLaMA with linear / llama3 rope scaling, biases and an
// explicit head_dim; Mistral and Qwen windows shorter than the sequence (Qwen's only on upper
// layers); Qwen with YaRN; Qwen3's head_dim; OPT pre- and post-LayerNorm, with and without
// projections.
Case RandomCase(ModelFamily family, uint32_t seed) {
  std::mt19937 rng(seed);
  auto pick = [&rng](int lo, int hi) { return lo + static_cast<int>(rng() % (hi - lo + 1)); };
  Case c;
  ModelConfig& m = c.config;
  m.family = family;
  const Architecture base = m.arch();
  const bool rope = !base.learned_positions;
  m.vocab_size = pick(20, 90);
  m.n_layer = pick(1, 3);
  m.n_head = pick(1, 4);
  m.n_kv_head = rope ? (m.n_head % 2 == 0 ? m.n_head / 2 : m.n_head) : m.n_head;
  m.d_model = m.n_head * 2 * pick(2, 5);
  m.d_ff = pick(8, 50);
  m.max_seq_len = pick(12, 24);
  m.norm_eps = rope ? 1e-6f : 1e-5f;
  m.rope_theta = rope ? static_cast<float>(pick(100, 20000)) : 1e4f;
  m.tie_embeddings = !rope || rng() % 2 == 0;
  const int variant = static_cast<int>(seed % 4);
  switch (family) {
    case ModelFamily::kGpt2:
      break;
    case ModelFamily::kOpt:
      m.layer_norm_before = variant % 2 == 0;
      if (variant >= 2) m.word_embed_proj_dim = 2 * pick(2, 6);
      break;
    case ModelFamily::kLlama:
      if (variant == 1) {  // Linear position interpolation.
        m.rope_scaling.kind = RopeScaling::Kind::kLinear;
        m.rope_scaling.factor = static_cast<float>(pick(2, 8));
      } else if (variant == 2) {  // Llama 3.1's bands.
        m.rope_scaling.kind = RopeScaling::Kind::kLlama3;
        m.rope_scaling.factor = 8.0f;
        m.rope_scaling.low_freq_factor = 1.0f;
        m.rope_scaling.high_freq_factor = 4.0f;
        m.rope_scaling.original_max_position_embeddings = pick(8, 64);
      } else if (variant == 3) {
        m.attention_bias = true;
        m.mlp_bias = true;
        m.explicit_head_dim = 2 * pick(2, 6);
      }
      break;
    case ModelFamily::kMistral:
      m.explicit_head_dim = variant % 2 == 0 ? 2 * pick(2, 6) : 0;
      m.sliding_window = variant == 3 ? 0 : pick(2, 6);
      break;
    case ModelFamily::kQwen2:
    case ModelFamily::kQwen3:
      if (family == ModelFamily::kQwen3) {
        m.explicit_head_dim = 2 * pick(2, 6);
        m.attention_bias = variant == 3;
      }
      if (variant % 2 == 1) {
        m.sliding_window = pick(2, 6);
        m.window_from_layer = pick(0, m.n_layer - 1);
      }
      if (variant == 2) {  // YaRN, as Qwen2.5 long-context configs enable it.
        m.rope_scaling.kind = RopeScaling::Kind::kYarn;
        m.rope_scaling.factor = static_cast<float>(pick(2, 8));
        m.rope_scaling.original_max_position_embeddings = m.max_seq_len;
        m.rope_scaling.beta_fast = static_cast<float>(pick(8, 32));
        if (family == ModelFamily::kQwen3) {  // The mscale / mscale_all_dim attention factor.
          m.rope_scaling.mscale = 1.0f;
          m.rope_scaling.mscale_all_dim = 0.5f;
        }
      }
      break;
  }
  c.B = pick(1, 3);
  c.T = pick(std::min(8, m.max_seq_len), m.max_seq_len);
  c.seed = seed;
  return c;
}

void ScaleParameters(Transformer& m, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> noise(0.0f, 0.5f);
  for (const TensorInfo& t : m.layout().tensors()) {
    for (int64_t i = 0; i < t.numel; ++i) {
      float& p = m.params()[t.offset + i];
      p = t.role == TensorRole::kNorm   ? 1.0f + noise(rng) * 0.3f
          : t.role == TensorRole::kBias ? 0.2f * noise(rng)
                                        : p * 8.0f + 0.01f * noise(rng);
    }
  }
}

absl::StatusOr<SafetensorsFile> RunReference(const std::string& dir, int B, int T,
                                             const std::vector<int32_t>& tokens,
                                             const std::vector<int32_t>& targets) {
  const std::string command = absl::StrCat(kPython, " ", kScript, " --dir=", dir, " --batch=", B,
                                           " --seq=", T, " --tokens=", absl::StrJoin(tokens, ","),
                                           " --targets=", absl::StrJoin(targets, ","));
  if (std::system(command.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("failed: ", command));
  }
  return SafetensorsFile::Open(dir + "/torch_out.safetensors");
}

std::vector<float> ReadOutput(const SafetensorsFile& out, const std::string& name) {
  const SafetensorsEntry* e = out.header().Find(name);
  std::vector<float> v(e != nullptr ? e->numel() : 0);
  if (e != nullptr && !out.ReadF32(*e, v.data()).ok()) v.clear();
  return v;
}

void RandomBatch(const Case& c, std::mt19937& rng, std::vector<int32_t>* tokens,
                 std::vector<int32_t>* targets) {
  tokens->resize(static_cast<size_t>(c.B) * c.T);
  targets->resize(tokens->size());
  for (auto& t : *tokens) t = static_cast<int32_t>(rng() % c.config.vocab_size);
  for (auto& t : *targets) t = static_cast<int32_t>(rng() % c.config.vocab_size);
}

absl::StatusOr<double> LogitError(Transformer& model, const SafetensorsFile& out,
                                  const std::vector<int32_t>& tokens, int B, int T) {
  const std::vector<float> ref = ReadOutput(out, "logits");
  if (ref.empty()) return absl::NotFoundError("the reference wrote no logits");
  std::vector<float> logits(ref.size());
  if (absl::Status s = model.Logits(tokens, B, T, logits.data()); !s.ok()) return s;
  double max_logit = 0, max_diff = 0;
  for (float v : ref) max_logit = std::max(max_logit, std::fabs(static_cast<double>(v)));
  for (size_t i = 0; i < logits.size(); ++i) {
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(logits[i]) - ref[i]));
  }
  return max_diff / (1 + max_logit);
}

}  // namespace strata::testing_parity
