// See transformer.h. Training buffers are laid out per layer as in llm.c; the inference pass
// reuses one set of block buffers. Kernel conventions are in runtime/kernels/cpu_kernels.h.
#include "runtime/model/transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "runtime/base/thread_pool.h"
#include "runtime/kernels/attention.h"
#include "runtime/kernels/cpu_kernels.h"
#include "runtime/kernels/matmul.h"
#include "runtime/model/rope_frequencies.h"

namespace strata {
namespace {

namespace k = kernels;

// Rows of logits computed at once by the chunked head; bounds the (rows, V) buffer.
constexpr int64_t kTrainHeadFloats = int64_t{16} << 20;  // 64 MiB.
constexpr int64_t kInferHeadFloats = int64_t{8} << 20;   // 32 MiB.

int64_t HeadChunkRows(int64_t budget_floats, int V, int64_t N) {
  return std::max<int64_t>(1, std::min<int64_t>(N, budget_floats / V));
}

// Dimensions shared by all layers.
struct Dims {
  int64_t B, T, N, C, V, F, FF1, QKV, NH, NKV, HD;
  bool gpt2;
  explicit Dims(const ModelConfig& c, int b, int t)
      : B(b),
        T(t),
        N(static_cast<int64_t>(b) * t),
        C(c.d_model),
        V(c.vocab_size),
        F(c.d_ff),
        FF1(c.family == ModelFamily::kGpt2 ? c.d_ff : 2 * static_cast<int64_t>(c.d_ff)),
        QKV(static_cast<int64_t>(c.n_head + 2 * c.n_kv_head) * c.head_dim()),
        NH(c.n_head),
        NKV(c.n_kv_head),
        HD(c.head_dim()),
        gpt2(c.family == ModelFamily::kGpt2) {}
  k::AttentionShape attention() const {
    return {static_cast<int>(B), static_cast<int>(T), static_cast<int>(NH), static_cast<int>(NKV),
            static_cast<int>(HD)};
  }
};

// Hands out consecutive slices of one buffer.
class Carver {
 public:
  explicit Carver(float* base) : next_(base) {}
  float* Take(int64_t floats) {
    float* slice = next_;
    next_ += floats;
    return slice;
  }

 private:
  float* next_;
};

// Per-layer training activations, carved out of one buffer.
struct LayerActs {
  float *ln1, *ln1_mean, *ln1_rstd, *qkv, *att, *atty, *res1, *ln2, *ln2_mean, *ln2_rstd, *fc,
      *fc_act;
  static int64_t Floats(const Dims& d) {
    return d.N * d.C * 4 + d.N * 4 + d.N * d.QKV + d.B * d.NH * d.T * d.T + d.N * d.FF1 + d.N * d.F;
  }
  static LayerActs At(float* p, const Dims& d) {
    LayerActs a;
    Carver carve(p);
    a.ln1 = carve.Take(d.N * d.C);
    a.ln1_mean = carve.Take(d.N);
    a.ln1_rstd = carve.Take(d.N);
    a.qkv = carve.Take(d.N * d.QKV);
    a.att = carve.Take(d.B * d.NH * d.T * d.T);
    a.atty = carve.Take(d.N * d.C);
    a.res1 = carve.Take(d.N * d.C);
    a.ln2 = carve.Take(d.N * d.C);
    a.ln2_mean = carve.Take(d.N);
    a.ln2_rstd = carve.Take(d.N);
    a.fc = carve.Take(d.N * d.FF1);
    a.fc_act = carve.Take(d.N * d.F);
    return a;
  }
};

// Global training buffers after the per-layer ones.
struct TrainGlobals {
  float *resid, *lnf, *lnf_mean, *lnf_rstd, *head, *dres, *dln, *dqkv, *datty, *dfc, *dfc_act,
      *datt;
  int64_t head_rows;
  static int64_t Floats(const Dims& d, int L) {
    const int64_t rows = HeadChunkRows(kTrainHeadFloats, static_cast<int>(d.V), d.N);
    return (L + 1) * d.N * d.C + d.N * d.C + 2 * d.N + rows * d.V + 3 * d.N * d.C + d.N * d.QKV +
           d.N * d.FF1 + d.N * d.F + d.T * d.T;
  }
  static TrainGlobals At(float* p, const Dims& d, int L) {
    TrainGlobals g;
    Carver carve(p);
    g.head_rows = HeadChunkRows(kTrainHeadFloats, static_cast<int>(d.V), d.N);
    g.resid = carve.Take((L + 1) * d.N * d.C);
    g.lnf = carve.Take(d.N * d.C);
    g.lnf_mean = carve.Take(d.N);
    g.lnf_rstd = carve.Take(d.N);
    g.head = carve.Take(g.head_rows * d.V);
    g.dres = carve.Take(d.N * d.C);
    g.dln = carve.Take(d.N * d.C);
    g.datty = carve.Take(d.N * d.C);
    g.dqkv = carve.Take(d.N * d.QKV);
    g.dfc = carve.Take(d.N * d.FF1);
    g.dfc_act = carve.Take(d.N * d.F);
    g.datt = carve.Take(d.T * d.T);
    return g;
  }
};

// Inference working set.
struct InferBuffers {
  float *x, *ln, *qkv, *atty, *tmp, *fc, *fc_act, *att, *head, *mx, *sum, *target_logit;
  int64_t head_rows;  // Token rows of one (rows, vocab chunk) logits tile.
  static int64_t VocabChunk(const Dims& d) {
    return std::min<int64_t>(d.V, Transformer::kHeadChunkRows);
  }
  static int64_t Floats(const Dims& d) {
    const int64_t rows = HeadChunkRows(kInferHeadFloats, static_cast<int>(VocabChunk(d)), d.N);
    return 4 * d.N * d.C + d.N * d.QKV + d.N * d.FF1 + d.N * d.F + d.T * d.T +
           rows * VocabChunk(d) + 3 * d.N;
  }
  static InferBuffers At(float* p, const Dims& d) {
    InferBuffers b;
    Carver carve(p);
    b.head_rows = HeadChunkRows(kInferHeadFloats, static_cast<int>(VocabChunk(d)), d.N);
    b.x = carve.Take(d.N * d.C);
    b.ln = carve.Take(d.N * d.C);
    b.atty = carve.Take(d.N * d.C);
    b.tmp = carve.Take(d.N * d.C);
    b.qkv = carve.Take(d.N * d.QKV);
    b.fc = carve.Take(d.N * d.FF1);
    b.fc_act = carve.Take(d.N * d.F);
    b.att = carve.Take(d.T * d.T);
    b.head = carve.Take(b.head_rows * VocabChunk(d));
    b.mx = carve.Take(d.N);
    b.sum = carve.Take(d.N);
    b.target_logit = carve.Take(d.N);
    return b;
  }
};

// Offsets of a block's tensors relative to the block start.
struct BlockOffsets {
  std::vector<int64_t> at;
  explicit BlockOffsets(const ParamLayout& layout) {
    for (int s = 0; s < layout.SlotsPerBlock(); ++s) {
      at.push_back(layout.BlockTensor(0, s).offset - layout.BlockBegin(0));
    }
  }
};

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Standard normal from two uniform draws (Box-Muller).
double Normal(uint64_t& state) {
  const double u1 = (static_cast<double>(SplitMix64(state) >> 11) + 0.5) * 0x1.0p-53;
  const double u2 = (static_cast<double>(SplitMix64(state) >> 11) + 0.5) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Transformer>> Transformer::Create(const ModelConfig& config,
                                                                 Options options) {
  if (absl::Status status = ValidateModelConfig(config); !status.ok()) return status;
  if (options.threads < 0) return absl::InvalidArgumentError("threads must be >= 0");
  return std::unique_ptr<Transformer>(new Transformer(config, options));
}

Transformer::Transformer(const ModelConfig& config, Options options)
    : layout_(config),
      options_(options),
      params_(layout_.NumElements()),
      rope_inv_freq_(config.family == ModelFamily::kLlama ? RopeInvFreq(config)
                                                          : std::vector<float>()) {
  if (options_.threads > 0) {
    ThreadPool::Global().SetThreads(options_.threads);
    k::SetBlasThreads(options_.threads);
  }
}

absl::Span<float> Transformer::grads() {
  if (grads_.size() == 0) grads_.Resize(layout_.NumElements());
  return grads_.span();
}

void Transformer::ZeroGrads() {
  if (grads_.size() > 0) std::memset(grads_.data(), 0, sizeof(float) * grads_.size());
}

int64_t Transformer::ActivationBytes() const {
  int64_t floats = train_.size();
  for (const InferStream& s : infer_) floats += s.buffer.size();
  return static_cast<int64_t>(sizeof(float)) * floats;
}

void Transformer::InitializeParameters(uint64_t seed) {
  for (const TensorInfo& t : layout_.tensors()) {
    InitializeTensor(seed, t.id, params_.data() + t.offset);
  }
}

void Transformer::InitializeRange(uint64_t seed, int64_t begin, int64_t end, float* out) const {
  for (const TensorInfo& t : layout_.tensors()) {
    if (t.offset >= begin && t.offset < end) InitializeTensor(seed, t.id, out + (t.offset - begin));
  }
}

void Transformer::InitializeTensor(uint64_t seed, int tensor_id, float* p) const {
  const ModelConfig& c = config();
  const TensorInfo& t = layout_.tensor(tensor_id);
  if (t.role == TensorRole::kBias) {
    std::fill(p, p + t.numel, 0.0f);
    return;
  }
  if (t.role == TensorRole::kNorm) {
    std::fill(p, p + t.numel, 1.0f);
    return;
  }
  const bool residual_proj = c.family == ModelFamily::kGpt2 && t.block >= 0 &&
                             (t.id == layout_.BlockTensorId(t.block, gpt2_slot::kAttnProjW) ||
                              t.id == layout_.BlockTensorId(t.block, gpt2_slot::kFcProjW));
  const double stddev = residual_proj ? 0.02 / std::sqrt(2.0 * c.n_layer) : 0.02;
  // One stream per tensor: the bits of a tensor do not depend on the others' sizes.
  uint64_t state = seed ^ (0xD1B54A32D192ED03ULL * (static_cast<uint64_t>(t.id) + 1));
  for (int64_t i = 0; i < t.numel; ++i) p[i] = static_cast<float>(Normal(state) * stddev);
}

absl::Status Transformer::CheckInputs(absl::Span<const int32_t> tokens,
                                      absl::Span<const int32_t> targets, int B, int T,
                                      bool need_targets) const {
  const ModelConfig& c = config();
  if (B <= 0 || T <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("batch ", B, " x seq ", T, " must be positive"));
  }
  if (T > c.max_seq_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence length ", T, " exceeds the model's maximum ", c.max_seq_len));
  }
  const int64_t n = static_cast<int64_t>(B) * T;
  if (static_cast<int64_t>(tokens.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokens has ", tokens.size(), " entries, expected B*T = ", n));
  }
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= c.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tokens[", i, "] = ", tokens[i], " is outside the vocabulary [0, ", c.vocab_size, ")"));
    }
  }
  return need_targets ? CheckTargets(targets, n) : absl::OkStatus();
}

absl::Status Transformer::CheckTargets(absl::Span<const int32_t> targets, int64_t n) const {
  if (static_cast<int64_t>(targets.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("targets has ", targets.size(), " entries, expected B*T = ", n));
  }
  int64_t valid = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (targets[i] >= config().vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("targets[", i, "] = ", targets[i], " is outside the vocabulary"));
    }
    valid += targets[i] >= 0;
  }
  if (valid == 0) return absl::InvalidArgumentError("every target is ignored (negative)");
  return absl::OkStatus();
}

void Transformer::EnsureTrainBuffers(int B, int T) {
  if (B == train_B_ && T == train_T_) return;
  const Dims d(config(), B, T);
  train_.Resize(LayerActs::Floats(d) * config().n_layer +
                TrainGlobals::Floats(d, config().n_layer));
  train_B_ = B;
  train_T_ = T;
}

void Transformer::EnsureInferBuffers(int B, int T, int stream) {
  InferStream& s = infer_[stream];
  if (B == s.B && T == s.T) return;
  s.buffer.Resize(InferBuffers::Floats(Dims(config(), B, T)));
  s.B = B;
  s.T = T;
}

const float* Transformer::HeadWeights(const float* base) const {
  const int id = layout_.head_id() >= 0 ? layout_.head_id() : layout_.token_embedding_id();
  return base + layout_.tensor(id).offset;
}

float Transformer::HeadLossChunked(const float* lnf, const float* head, const int32_t* targets,
                                   int64_t N, float* dlnf, float* dhead, int64_t max_chunk_rows,
                                   float* buffer) {
  const int C = config().d_model, V = config().vocab_size;
  int64_t valid = 0;
  for (int64_t i = 0; i < N; ++i) valid += targets[i] >= 0;
  const float scale = dlnf != nullptr ? 1.0f / static_cast<float>(valid) : 0.0f;
  double total = 0.0;
  std::vector<float> losses(max_chunk_rows);
  for (int64_t r0 = 0; r0 < N; r0 += max_chunk_rows) {
    const int64_t rows = std::min(max_chunk_rows, N - r0);
    // logits (rows, V) = lnf[r0:] @ head^T.
    k::sgemm(false, true, rows, V, C, 1.0f, lnf + r0 * C, C, head, C, 0.0f, buffer, V);
    k::crossentropy_rows(buffer, losses.data(), targets + r0, rows, V, scale);
    for (int64_t r = 0; r < rows; ++r) total += losses[r];
    if (dlnf != nullptr) {
      k::sgemm(false, false, rows, C, V, 1.0f, buffer, V, head, C, 0.0f, dlnf + r0 * C, C);
      k::sgemm(true, false, V, C, rows, 1.0f, buffer, V, lnf + r0 * C, C, 1.0f, dhead, C);
    }
  }
  return static_cast<float>(total / static_cast<double>(valid));
}

namespace {

// The default WeightSource: the model's own arena and gradient arena.
class ArenaSource : public Transformer::WeightSource {
 public:
  ArenaSource(const ParamLayout& layout, float* params, float* grads)
      : layout_(layout), params_(params), grads_(grads) {}
  absl::Status Begin(const float** resident, float** resident_grads) override {
    *resident = params_;
    *resident_grads = grads_;
    return absl::OkStatus();
  }
  absl::StatusOr<const float*> BlockWeights(int layer, bool) override {
    return params_ + layout_.BlockBegin(layer);
  }
  absl::StatusOr<float*> BlockGrads(int layer) override {
    return grads_ + layout_.BlockBegin(layer);
  }
  absl::Status BlockGradsDone(int) override { return absl::OkStatus(); }
  absl::Status End() override { return absl::OkStatus(); }

 private:
  const ParamLayout& layout_;
  float* params_;
  float* grads_;
};

}  // namespace

void Transformer::ReleaseBlockWeights() {
  params_.Discard(layout_.BlockBegin(0), layout_.BlockEnd(config().n_layer - 1));
}

absl::StatusOr<float> Transformer::ForwardBackward(absl::Span<const int32_t> tokens,
                                                   absl::Span<const int32_t> targets, int B, int T,
                                                   WeightSource* source) {
  if (absl::Status status = CheckInputs(tokens, targets, B, T, true); !status.ok()) return status;
  EnsureTrainBuffers(B, T);
  ArenaSource arena(layout_, params_.data(), source == nullptr ? grads().data() : nullptr);
  if (source == nullptr) source = &arena;
  const ModelConfig& c = config();
  const Dims d(c, B, T);
  const int L = c.n_layer;
  const int64_t layer_floats = LayerActs::Floats(d);
  TrainGlobals g = TrainGlobals::At(train_.data() + layer_floats * L, d, L);
  const float* P = nullptr;
  float* G = nullptr;
  if (absl::Status status = source->Begin(&P, &G); !status.ok()) return status;
  const BlockOffsets off(layout_);
  auto tensor = [&](const float* base, int id) { return base + layout_.tensor(id).offset; };
  auto gtensor = [&](int id) { return G + layout_.tensor(id).offset; };
  const k::AttentionShape shape = d.attention();

  // Forward.
  const float* wpe = d.gpt2 ? tensor(P, layout_.position_embedding_id()) : nullptr;
  k::embedding_forward(g.resid, tokens.data(), tensor(P, layout_.token_embedding_id()), wpe, B, T,
                       static_cast<int>(d.C));
  for (int l = 0; l < L; ++l) {
    LayerActs a = LayerActs::At(train_.data() + layer_floats * l, d);
    absl::StatusOr<const float*> weights = source->BlockWeights(l, false);
    if (!weights.ok()) return weights.status();
    const float* w = *weights;
    const float* in = g.resid + l * d.N * d.C;
    float* out = g.resid + (l + 1) * d.N * d.C;
    const int C = static_cast<int>(d.C), F = static_cast<int>(d.F);
    if (d.gpt2) {
      using namespace gpt2_slot;
      k::layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, in, w + off.at[kLn1W], w + off.at[kLn1B],
                           d.N, C, c.norm_eps);
      k::matmul_forward(a.qkv, a.ln1, w + off.at[kQkvW], w + off.at[kQkvB], d.N, C, 3 * C);
      k::attention_forward(a.atty, a.att, nullptr, a.qkv, shape);
      k::matmul_forward(a.res1, a.atty, w + off.at[kAttnProjW], w + off.at[kAttnProjB], d.N, C, C);
      k::residual_forward(a.res1, a.res1, in, d.N * d.C);
      k::layernorm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.res1, w + off.at[kLn2W],
                           w + off.at[kLn2B], d.N, C, c.norm_eps);
      k::matmul_forward(a.fc, a.ln2, w + off.at[kFcW], w + off.at[kFcB], d.N, C, F);
      k::gelu_forward(a.fc_act, a.fc, d.N * d.F);
      k::matmul_forward(out, a.fc_act, w + off.at[kFcProjW], w + off.at[kFcProjB], d.N, F, C);
    } else {
      using namespace llama_slot;
      k::rmsnorm_forward(a.ln1, a.ln1_rstd, in, w + off.at[kInputNormW], d.N, C, c.norm_eps);
      k::matmul_forward(a.qkv, a.ln1, w + off.at[kQW], nullptr, d.N, C, static_cast<int>(d.QKV));
      k::rope_apply(a.qkv, B, T, c.n_head, c.n_kv_head, c.head_dim(), rope_inv_freq_.data(), false);
      k::attention_forward(a.atty, a.att, nullptr, a.qkv, shape);
      k::matmul_forward(a.res1, a.atty, w + off.at[kOW], nullptr, d.N, C, C);
      k::residual_forward(a.res1, a.res1, in, d.N * d.C);
      k::rmsnorm_forward(a.ln2, a.ln2_rstd, a.res1, w + off.at[kPostNormW], d.N, C, c.norm_eps);
      k::matmul_forward(a.fc, a.ln2, w + off.at[kGateW], nullptr, d.N, C, 2 * F);
      k::swiglu_forward(a.fc_act, a.fc, d.N, F);
      k::matmul_forward(out, a.fc_act, w + off.at[kDownW], nullptr, d.N, F, C);
    }
    k::residual_forward(out, out, a.res1, d.N * d.C);
  }
  const float* last = g.resid + L * d.N * d.C;
  const float* lnf_w = tensor(P, layout_.final_norm_weight_id());
  if (d.gpt2) {
    k::layernorm_forward(g.lnf, g.lnf_mean, g.lnf_rstd, last, lnf_w,
                         tensor(P, layout_.final_norm_bias_id()), d.N, static_cast<int>(d.C),
                         c.norm_eps);
  } else {
    k::rmsnorm_forward(g.lnf, g.lnf_rstd, last, lnf_w, d.N, static_cast<int>(d.C), c.norm_eps);
  }
  const int head_id = layout_.head_id() >= 0 ? layout_.head_id() : layout_.token_embedding_id();
  // Fused head: loss, dlnf (into g.dln) and d(head) in one chunked pass.
  const float loss = HeadLossChunked(g.lnf, HeadWeights(P), targets.data(), d.N, g.dln,
                                     gtensor(head_id), g.head_rows, g.head);

  // Backward.
  std::memset(g.dres, 0, sizeof(float) * d.N * d.C);
  if (d.gpt2) {
    k::layernorm_backward(g.dres, gtensor(layout_.final_norm_weight_id()),
                          gtensor(layout_.final_norm_bias_id()), g.dln, last, lnf_w, g.lnf_mean,
                          g.lnf_rstd, d.N, static_cast<int>(d.C));
  } else {
    k::rmsnorm_backward(g.dres, gtensor(layout_.final_norm_weight_id()), g.dln, last, lnf_w,
                        g.lnf_rstd, d.N, static_cast<int>(d.C));
  }
  for (int l = L - 1; l >= 0; --l) {
    LayerActs a = LayerActs::At(train_.data() + layer_floats * l, d);
    absl::StatusOr<const float*> weights = source->BlockWeights(l, true);
    if (!weights.ok()) return weights.status();
    absl::StatusOr<float*> block_grads = source->BlockGrads(l);
    if (!block_grads.ok()) return block_grads.status();
    const float* w = *weights;
    float* gw = *block_grads;
    const float* in = g.resid + l * d.N * d.C;
    const int C = static_cast<int>(d.C), F = static_cast<int>(d.F);
    // g.dres holds d(out); the residual path passes it unchanged to d(res1) and d(in).
    if (d.gpt2) {
      using namespace gpt2_slot;
      k::matmul_backward(g.dfc_act, gw + off.at[kFcProjW], gw + off.at[kFcProjB], g.dres, a.fc_act,
                         w + off.at[kFcProjW], d.N, F, C, true);
      k::gelu_backward(g.dfc, a.fc, g.dfc_act, d.N * d.F);
      k::matmul_backward(g.dln, gw + off.at[kFcW], gw + off.at[kFcB], g.dfc, a.ln2,
                         w + off.at[kFcW], d.N, C, F, true);
      k::layernorm_backward(g.dres, gw + off.at[kLn2W], gw + off.at[kLn2B], g.dln, a.res1,
                            w + off.at[kLn2W], a.ln2_mean, a.ln2_rstd, d.N, C);
      k::matmul_backward(g.datty, gw + off.at[kAttnProjW], gw + off.at[kAttnProjB], g.dres, a.atty,
                         w + off.at[kAttnProjW], d.N, C, C, true);
      k::attention_backward(g.dqkv, g.datt, g.datty, a.qkv, a.att, shape);
      k::matmul_backward(g.dln, gw + off.at[kQkvW], gw + off.at[kQkvB], g.dqkv, a.ln1,
                         w + off.at[kQkvW], d.N, C, 3 * C, true);
      k::layernorm_backward(g.dres, gw + off.at[kLn1W], gw + off.at[kLn1B], g.dln, in,
                            w + off.at[kLn1W], a.ln1_mean, a.ln1_rstd, d.N, C);
    } else {
      using namespace llama_slot;
      k::matmul_backward(g.dfc_act, gw + off.at[kDownW], nullptr, g.dres, a.fc_act,
                         w + off.at[kDownW], d.N, F, C, true);
      k::swiglu_backward(g.dfc, a.fc, g.dfc_act, d.N, F);
      k::matmul_backward(g.dln, gw + off.at[kGateW], nullptr, g.dfc, a.ln2, w + off.at[kGateW], d.N,
                         C, 2 * F, true);
      k::rmsnorm_backward(g.dres, gw + off.at[kPostNormW], g.dln, a.res1, w + off.at[kPostNormW],
                          a.ln2_rstd, d.N, C);
      k::matmul_backward(g.datty, gw + off.at[kOW], nullptr, g.dres, a.atty, w + off.at[kOW], d.N,
                         C, C, true);
      k::attention_backward(g.dqkv, g.datt, g.datty, a.qkv, a.att, shape);
      k::rope_apply(g.dqkv, B, T, c.n_head, c.n_kv_head, c.head_dim(), rope_inv_freq_.data(), true);
      k::matmul_backward(g.dln, gw + off.at[kQW], nullptr, g.dqkv, a.ln1, w + off.at[kQW], d.N, C,
                         static_cast<int>(d.QKV), true);
      k::rmsnorm_backward(g.dres, gw + off.at[kInputNormW], g.dln, in, w + off.at[kInputNormW],
                          a.ln1_rstd, d.N, C);
    }
    if (absl::Status status = source->BlockGradsDone(l); !status.ok()) return status;
  }
  float* dwpe = d.gpt2 ? gtensor(layout_.position_embedding_id()) : nullptr;
  k::embedding_backward(gtensor(layout_.token_embedding_id()), dwpe, g.dres, tokens.data(), B, T,
                        static_cast<int>(d.C));
  if (absl::Status status = source->End(); !status.ok()) return status;
  return loss;
}

absl::Status Transformer::BeginForward(const float* resident, absl::Span<const int32_t> tokens,
                                       int B, int T, int stream, const float* token_embedding) {
  if (stream < 0 || stream >= kStreams) {
    return absl::InvalidArgumentError(absl::StrCat("stream ", stream, " is not 0 or 1"));
  }
  if (absl::Status status = CheckInputs(tokens, {}, B, T, false); !status.ok()) return status;
  EnsureInferBuffers(B, T, stream);
  infer_[stream].active = true;
  const Dims d(config(), B, T);
  InferBuffers b = InferBuffers::At(infer_[stream].buffer.data(), d);
  const float* wpe =
      d.gpt2 ? resident + layout_.tensor(layout_.position_embedding_id()).offset : nullptr;
  const float* wte = token_embedding != nullptr
                         ? token_embedding
                         : resident + layout_.tensor(layout_.token_embedding_id()).offset;
  k::embedding_forward(b.x, tokens.data(), wte, wpe, B, T, static_cast<int>(d.C));
  return absl::OkStatus();
}

float* Transformer::ResidualStream(int stream) {
  const Dims d(config(), infer_[stream].B, infer_[stream].T);
  return InferBuffers::At(infer_[stream].buffer.data(), d).x;
}

void Transformer::BlockForward(int /*layer*/, const float* block_weights, int stream) {
  BlockForwardInfer(block_weights, stream);
}

void Transformer::BlockForwardInfer(const float* w, int stream) {
  const ModelConfig& c = config();
  const int B = infer_[stream].B, T = infer_[stream].T;
  const Dims d(c, B, T);
  InferBuffers b = InferBuffers::At(infer_[stream].buffer.data(), d);
  const BlockOffsets off(layout_);
  const int C = static_cast<int>(d.C), F = static_cast<int>(d.F);
  if (d.gpt2) {
    using namespace gpt2_slot;
    k::layernorm_forward(b.ln, nullptr, nullptr, b.x, w + off.at[kLn1W], w + off.at[kLn1B], d.N, C,
                         c.norm_eps);
    k::matmul_forward(b.qkv, b.ln, w + off.at[kQkvW], w + off.at[kQkvB], d.N, C, 3 * C);
    k::attention_forward(b.atty, nullptr, b.att, b.qkv, d.attention());
    k::matmul_forward(b.tmp, b.atty, w + off.at[kAttnProjW], w + off.at[kAttnProjB], d.N, C, C);
    k::residual_forward(b.x, b.x, b.tmp, d.N * d.C);
    k::layernorm_forward(b.ln, nullptr, nullptr, b.x, w + off.at[kLn2W], w + off.at[kLn2B], d.N, C,
                         c.norm_eps);
    k::matmul_forward(b.fc, b.ln, w + off.at[kFcW], w + off.at[kFcB], d.N, C, F);
    k::gelu_forward(b.fc_act, b.fc, d.N * d.F);
    k::matmul_forward(b.tmp, b.fc_act, w + off.at[kFcProjW], w + off.at[kFcProjB], d.N, F, C);
  } else {
    using namespace llama_slot;
    k::rmsnorm_forward(b.ln, nullptr, b.x, w + off.at[kInputNormW], d.N, C, c.norm_eps);
    k::matmul_forward(b.qkv, b.ln, w + off.at[kQW], nullptr, d.N, C, static_cast<int>(d.QKV));
    k::rope_apply(b.qkv, B, T, c.n_head, c.n_kv_head, c.head_dim(), rope_inv_freq_.data(), false);
    k::attention_forward(b.atty, nullptr, b.att, b.qkv, d.attention());
    k::matmul_forward(b.tmp, b.atty, w + off.at[kOW], nullptr, d.N, C, C);
    k::residual_forward(b.x, b.x, b.tmp, d.N * d.C);
    k::rmsnorm_forward(b.ln, nullptr, b.x, w + off.at[kPostNormW], d.N, C, c.norm_eps);
    k::matmul_forward(b.fc, b.ln, w + off.at[kGateW], nullptr, d.N, C, 2 * F);
    k::swiglu_forward(b.fc_act, b.fc, d.N, F);
    k::matmul_forward(b.tmp, b.fc_act, w + off.at[kDownW], nullptr, d.N, F, C);
  }
  k::residual_forward(b.x, b.x, b.tmp, d.N * d.C);
}

absl::StatusOr<float> Transformer::EndForward(const float* resident,
                                              absl::Span<const int32_t> targets, int stream,
                                              const HeadRows& head_rows) {
  if (stream < 0 || stream >= kStreams || !infer_[stream].active) {
    return absl::FailedPreconditionError("EndForward without BeginForward on this stream");
  }
  infer_[stream].active = false;
  const int B = infer_[stream].B, T = infer_[stream].T;
  if (absl::Status status = CheckTargets(targets, static_cast<int64_t>(B) * T); !status.ok()) {
    return status;
  }
  const ModelConfig& c = config();
  const Dims d(c, B, T);
  InferBuffers b = InferBuffers::At(infer_[stream].buffer.data(), d);
  FinalNorm(resident, b.x, b.ln, d.N);
  // Vocabulary chunk outer, token rows inner: each head chunk is produced once per call.
  const int64_t N = d.N, C = d.C, V = d.V, chunk = InferBuffers::VocabChunk(d);
  std::fill(b.mx, b.mx + N, -std::numeric_limits<float>::infinity());
  std::fill(b.sum, b.sum + N, 0.0f);
  std::fill(b.target_logit, b.target_logit + N, 0.0f);
  const float* head = HeadWeights(resident);
  for (int64_t v0 = 0; v0 < V; v0 += chunk) {
    const int64_t n = std::min(chunk, V - v0);
    const float* w = head_rows != nullptr ? head_rows(v0, n) : head + v0 * C;
    for (int64_t r0 = 0; r0 < N; r0 += b.head_rows) {
      const int64_t rows = std::min(b.head_rows, N - r0);
      k::sgemm(false, true, rows, n, C, 1.0f, b.ln + r0 * C, C, w, C, 0.0f, b.head, n);
      k::crossentropy_chunk(b.head, rows, static_cast<int>(n), v0, targets.data() + r0, b.mx + r0,
                            b.sum + r0, b.target_logit + r0);
    }
  }
  double total = 0.0;
  int64_t valid = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (targets[i] < 0) continue;
    ++valid;
    total += static_cast<double>(std::log(b.sum[i]) + b.mx[i] - b.target_logit[i]);
  }
  return static_cast<float>(total / static_cast<double>(valid));
}

void Transformer::FinalNorm(const float* base, const float* x, float* out, int64_t N) const {
  const ModelConfig& c = config();
  const float* lnf_w = base + layout_.tensor(layout_.final_norm_weight_id()).offset;
  if (c.family == ModelFamily::kGpt2) {
    k::layernorm_forward(out, nullptr, nullptr, x, lnf_w,
                         base + layout_.tensor(layout_.final_norm_bias_id()).offset, N, c.d_model,
                         c.norm_eps);
  } else {
    k::rmsnorm_forward(out, nullptr, x, lnf_w, N, c.d_model, c.norm_eps);
  }
}

absl::StatusOr<float> Transformer::Loss(absl::Span<const int32_t> tokens,
                                        absl::Span<const int32_t> targets, int B, int T,
                                        const float* params) {
  if (absl::Status status = CheckInputs(tokens, targets, B, T, true); !status.ok()) return status;
  const float* base = params != nullptr ? params : params_.data();
  if (absl::Status status = BeginForward(base, tokens, B, T); !status.ok()) return status;
  for (int l = 0; l < config().n_layer; ++l) BlockForward(l, base + layout_.BlockBegin(l));
  return EndForward(base, targets);
}

absl::Status Transformer::Logits(absl::Span<const int32_t> tokens, int B, int T, float* logits) {
  if (absl::Status status = BeginForward(params_.data(), tokens, B, T); !status.ok()) {
    return status;
  }
  for (int l = 0; l < config().n_layer; ++l) {
    BlockForward(l, params_.data() + layout_.BlockBegin(l));
  }
  infer_[0].active = false;
  const Dims d(config(), B, T);
  InferBuffers b = InferBuffers::At(infer_[0].buffer.data(), d);
  FinalNorm(params_.data(), b.x, b.ln, d.N);
  k::sgemm(false, true, d.N, d.V, d.C, 1.0f, b.ln, d.C, HeadWeights(params_.data()), d.C, 0.0f,
           logits, d.V);
  return absl::OkStatus();
}

}  // namespace strata
