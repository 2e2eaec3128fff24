// peft_bench: what LoRA costs and saves against full-parameter training, on the GPT-2-small
// shape (124M), a LLaMA-style shape (TinyLlama-1.1B's width, GQA heads, MLP and 32K vocabulary,
// 4 layers) and a Qwen2.5-0.5B-style shape (its width, heads, MLP and 152K vocabulary, 6 layers,
// where the output head is most of the work), batch 4 x 128, 2 threads, each case in its own
// child process for its peak RSS:
//   ZO step, full (MeZO over every weight) vs ZO-LoRA (r 8, alpha 16, the family's q and v);
//   FO step, full (AdamW over every weight) vs FO-LoRA (AdamW over the adapters, base frozen);
//   PyTorch peers of both LoRA steps (torch_lora_bench.py: the same shapes, targets, threads);
//   federated replay on the GPT-2-small shape: one round's history entry of K = 4096 seeds
//   applied to the full weights (timed on --replay_full_seeds seeds and scaled: each seed costs
//   the same) and to the adapters (timed on all 4096).
// The last line is one JSON object; a failing case, Strata's or the peer's, fails the benchmark.
//   bazel run -c opt //runtime/peft:peft_bench
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/model/model_config.h"
#include "runtime/model/transformer.h"
#include "runtime/optim/adamw.h"
#include "runtime/peft/lora_adapters.h"
#include "runtime/peft/zo_adapters.h"
#include "runtime/testing/bench_util.h"
#include "runtime/zo/zo_optimizer.h"

ABSL_FLAG(std::string, mode, "all",
          "all, or one case in this process: zo_full | zo_lora | fo_full | fo_lora | "
          "replay_full | replay_lora");
ABSL_FLAG(std::string, shape, "gpt2", "gpt2 | llama | qwen (the case's model shape)");
ABSL_FLAG(int, threads, 2, "Compute threads.");
ABSL_FLAG(int, steps, 2, "Timed steps after one warm-up; the median counts.");
ABSL_FLAG(int, batch, 4, "Sequences per step.");
ABSL_FLAG(int, seq, 128, "Tokens per sequence.");
ABSL_FLAG(int, replay_full_seeds, 16, "Seeds the full replay is timed on (scaled to 4096).");

namespace strata {
namespace {

constexpr int kReplaySeeds = 4096;

ModelConfig Shape(const std::string& name) {
  if (name == "gpt2") return Gpt2SmallConfig();
  if (name == "llama") {
    ModelConfig c;  // TinyLlama-1.1B's block and vocabulary, 4 of its 22 layers.
    c.family = ModelFamily::kLlama;
    c.vocab_size = 32000;
    c.max_seq_len = 2048;
    c.n_layer = 4;
    c.n_head = 32;
    c.n_kv_head = 4;
    c.d_model = 2048;
    c.d_ff = 5632;
    c.norm_eps = 1e-5f;
    return c;
  }
  ModelConfig c;  // Qwen2.5-0.5B's block and vocabulary, 6 of its 24 layers.
  c.family = ModelFamily::kQwen2;
  c.vocab_size = 151936;
  c.max_seq_len = 32768;
  c.n_layer = 6;
  c.n_head = 14;
  c.n_kv_head = 2;
  c.d_model = 896;
  c.d_ff = 4864;
  c.norm_eps = 1e-6f;
  c.rope_theta = 1e6f;
  c.tie_embeddings = true;
  return c;
}

LoraConfig MezoLora(ModelFamily family) {
  LoraConfig config;  // r 8, alpha 16.
  config.target_modules = DefaultLoraTargets(family);
  return config;
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// One case in this process; prints {"tok_s": median} (steps) or {"seconds": ...} (replay).
int RunCase(const std::string& mode) {
  Transformer::Options options;
  options.threads = absl::GetFlag(FLAGS_threads);
  const ModelConfig config = Shape(absl::GetFlag(FLAGS_shape));
  auto model = *Transformer::Create(config, options);
  model->InitializeParameters(1);
  const bool lora_case = mode.find("lora") != std::string::npos;
  std::unique_ptr<LoraAdapters> lora;
  if (lora_case) {
    auto created = LoraAdapters::Create(model->layout(), MezoLora(config.family));
    if (!created.ok()) {
      std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
      return 1;
    }
    lora = *std::move(created);
    lora->Initialize(2);
  }
  zo::ZoConfig zo_config;
  zo_config.eps = 1e-3f;
  if (mode == "replay_full" || mode == "replay_lora") {
    std::unique_ptr<zo::ZoOptimizer> full;
    std::unique_ptr<ZoAdapters> adapters;
    if (lora_case) {
      adapters = *ZoAdapters::Create(model.get(), lora.get(), zo_config);
    } else {
      full = *zo::ZoOptimizer::Create(model.get(), zo_config);
    }
    const int seeds = lora_case ? kReplaySeeds : absl::GetFlag(FLAGS_replay_full_seeds);
    std::mt19937 rng(3);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < seeds; ++i) {
      zo::ZoStepRecord record;
      record.step = 1;
      record.seed = zo::StepSeed(11, static_cast<uint64_t>(rng() % kReplaySeeds));
      record.scalars = {0.01f * static_cast<float>(rng() % 200) - 1.0f};
      record.lr = 1e-6;
      const absl::Status s = lora_case ? adapters->Replay(record) : full->Replay(record);
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        return 1;
      }
    }
    const double seconds = Seconds(start);
    std::fprintf(stderr, "%s: %d seeds in %.3f s\n", mode.c_str(), seeds, seconds);
    std::printf("{\"seconds\": %.6f}\n", seconds * kReplaySeeds / seeds);
    return 0;
  }
  const int B = absl::GetFlag(FLAGS_batch), T = absl::GetFlag(FLAGS_seq);
  std::mt19937 rng(0);
  std::vector<int32_t> tokens(B * T), targets(B * T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % config.vocab_size);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % config.vocab_size);
  std::unique_ptr<zo::ZoOptimizer> zo_full;
  std::unique_ptr<ZoAdapters> zo_lora;
  std::unique_ptr<AdamW> adamw;
  AlignedBuffer m, v;  // FO-LoRA's AdamW state.
  const AdamWConfig adam{0.9f, 0.999f, 1e-8f, 0.0f};
  if (mode == "zo_full") zo_full = *zo::ZoOptimizer::Create(model.get(), zo_config);
  if (mode == "zo_lora") zo_lora = *ZoAdapters::Create(model.get(), lora.get(), zo_config);
  if (mode == "fo_full") adamw = std::make_unique<AdamW>(model->layout(), adam);
  if (mode == "fo_lora") {
    model->SetAdapters(lora.get(), /*base_frozen=*/true);
    m.Resize(lora->NumElements());
    v.Resize(lora->NumElements());
    std::fill(m.span().begin(), m.span().end(), 0.0f);
    std::fill(v.span().begin(), v.span().end(), 0.0f);
  }
  std::vector<double> times;
  for (int step = 1; step <= absl::GetFlag(FLAGS_steps) + 1; ++step) {
    const auto start = std::chrono::steady_clock::now();
    absl::Status status;
    if (zo_full != nullptr) {
      // The update is deferred into the next step's perturbation pass (in the steady state
      // every step applies its predecessor's).
      status = zo_full->Step(tokens, targets, B, T, step, 1e-6).status();
    } else if (zo_lora != nullptr) {
      status = zo_lora->Step(tokens, targets, B, T, step, 1e-4).status();
    } else if (adamw != nullptr) {
      model->ZeroGrads();
      status = model->ForwardBackward(tokens, targets, B, T).status();
      ClipGradNorm(model->grads(), 1.0);
      adamw->Step(model->params(), model->grads(), 1e-4f);
    } else {
      lora->ZeroGrads();
      status = model->ForwardBackward(tokens, targets, B, T).status();
      ClipGradNorm(lora->grads(), 1.0);
      adamw_update(lora->weights().data(), lora->grads().data(), m.data(), v.data(),
                   lora->NumElements(), 1e-4f, adam, step);
    }
    if (!status.ok()) {
      std::fprintf(stderr, "%s\n", status.ToString().c_str());
      return 1;
    }
    const double s = Seconds(start);
    std::fprintf(stderr, "%s %s step %d: %.3f s\n", absl::GetFlag(FLAGS_shape).c_str(),
                 mode.c_str(), step, s);
    if (step > 1) times.push_back(s);
  }
  std::printf("{\"tok_s\": %.3f}\n", B * T / bench::Median(times));
  return 0;
}

struct ShapeFigures {
  bench::ChildResult zo_full, zo_lora, fo_full, fo_lora, torch_zo_lora, torch_fo_lora;
};

ShapeFigures MeasureShape(const std::string& shape) {
  const int threads = absl::GetFlag(FLAGS_threads), steps = absl::GetFlag(FLAGS_steps);
  const int B = absl::GetFlag(FLAGS_batch), T = absl::GetFlag(FLAGS_seq);
  auto self = [&](const std::string& mode) {
    return bench::RunChild({"/proc/self/exe", "--mode=" + mode, "--shape=" + shape,
                            absl::StrCat("--threads=", threads), absl::StrCat("--steps=", steps),
                            absl::StrCat("--batch=", B), absl::StrCat("--seq=", T)});
  };
  const ModelConfig config = Shape(shape);
  std::string config_json = ToHfConfigJson(config);
  config_json.erase(std::remove(config_json.begin(), config_json.end(), '\n'), config_json.end());
  const std::string targets =
      config.family == ModelFamily::kGpt2 ? "attn.c_attn" : "self_attn.q_proj,self_attn.v_proj";
  auto torch = [&](const std::string& mode) {
    return bench::RunChild({"/usr/bin/python3", "runtime/peft/testing/torch_lora_bench.py",
                            "--mode=" + mode, "--config=" + config_json, "--targets=" + targets,
                            absl::StrCat("--threads=", threads), absl::StrCat("--steps=", steps),
                            absl::StrCat("--B=", B), absl::StrCat("--T=", T)});
  };
  ShapeFigures f;
  f.zo_full = self("zo_full");
  f.zo_lora = self("zo_lora");
  f.fo_full = self("fo_full");
  f.fo_lora = self("fo_lora");
  f.torch_zo_lora = torch("zo_lora");
  f.torch_fo_lora = torch("fo_lora");
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  std::fprintf(stderr,
               "%s (%.0fM params): ZO full %.1f tok/s, ZO-LoRA %.1f (%.2fx), torch ZO-LoRA %.1f "
               "(ours %.2fx) | FO full %.1f tok/s %.0f MB, FO-LoRA %.1f (%.2fx) %.0f MB (%.2fx), "
               "torch FO-LoRA %.1f %.0f MB (ours %.2fx)\n",
               shape.c_str(), config.NumParameters() / 1e6, f.zo_full.value, f.zo_lora.value,
               ratio(f.zo_lora.value, f.zo_full.value), f.torch_zo_lora.value,
               ratio(f.zo_lora.value, f.torch_zo_lora.value), f.fo_full.value, f.fo_full.rss_mb,
               f.fo_lora.value, ratio(f.fo_lora.value, f.fo_full.value), f.fo_lora.rss_mb,
               ratio(f.fo_lora.rss_mb, f.fo_full.rss_mb), f.torch_fo_lora.value,
               f.torch_fo_lora.rss_mb, ratio(f.fo_lora.value, f.torch_fo_lora.value));
  return f;
}

bool AllOk(const ShapeFigures& f) {
  return f.zo_full.ok && f.zo_lora.ok && f.fo_full.ok && f.fo_lora.ok && f.torch_zo_lora.ok &&
         f.torch_fo_lora.ok;
}

int RunAll() {
  std::fprintf(stderr, "peft_bench: batch %d x %d, %d threads\n", absl::GetFlag(FLAGS_batch),
               absl::GetFlag(FLAGS_seq), absl::GetFlag(FLAGS_threads));
  const ShapeFigures gpt2 = MeasureShape("gpt2");
  const ShapeFigures llama = MeasureShape("llama");
  const ShapeFigures qwen = MeasureShape("qwen");
  const int threads = absl::GetFlag(FLAGS_threads);
  auto replay = [&](const std::string& mode) {
    return bench::RunChild(
        {"/proc/self/exe", "--mode=" + mode, "--shape=gpt2", absl::StrCat("--threads=", threads),
         absl::StrCat("--replay_full_seeds=", absl::GetFlag(FLAGS_replay_full_seeds))});
  };
  const bench::ChildResult replay_full = replay("replay_full"), replay_lora = replay("replay_lora");
  std::fprintf(stderr, "replay of one K=%d history entry (GPT-2 small): full %.2f s, LoRA %.3f s\n",
               kReplaySeeds, replay_full.value, replay_lora.value);
  if (!AllOk(gpt2) || !AllOk(llama) || !AllOk(qwen) || !replay_full.ok || !replay_lora.ok) {
    std::fprintf(stderr, "peft_bench: a case failed (Strata's or PyTorch's)\n");
    return 1;
  }
  auto figures = [](const char* prefix, const ShapeFigures& f) {
    return absl::StrFormat(
        "\"%szo_lora_tok_s\": %.2f, \"%szo_full_tok_s\": %.2f, \"%storch_zo_lora_tok_s\": %.2f, "
        "\"%sfo_lora_tok_s\": %.2f, \"%sfo_full_tok_s\": %.2f, \"%storch_fo_lora_tok_s\": %.2f, "
        "\"%sfo_lora_rss_mb\": %.0f, \"%sfo_full_rss_mb\": %.0f, \"%storch_fo_lora_rss_mb\": %.0f",
        prefix, f.zo_lora.value, prefix, f.zo_full.value, prefix, f.torch_zo_lora.value, prefix,
        f.fo_lora.value, prefix, f.fo_full.value, prefix, f.torch_fo_lora.value, prefix,
        f.fo_lora.rss_mb, prefix, f.fo_full.rss_mb, prefix, f.torch_fo_lora.rss_mb);
  };
  std::printf("{%s, %s, %s, \"replay_full_s\": %.3f, \"replay_lora_s\": %.4f, \"threads\": %d}\n",
              figures("", gpt2).c_str(), figures("llama_", llama).c_str(),
              figures("qwen_", qwen).c_str(), replay_full.value, replay_lora.value, threads);
  return 0;
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "all") return strata::RunAll();
  for (const char* m : {"zo_full", "zo_lora", "fo_full", "fo_lora", "replay_full", "replay_lora"}) {
    if (mode == m) return strata::RunCase(mode);
  }
  std::fprintf(stderr, "unknown --mode=%s\n", mode.c_str());
  return 2;
}
