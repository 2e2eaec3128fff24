// See transformer.h. Training buffers are laid out per layer as in llm.c; the inference pass
// reuses one set of block buffers. Kernel conventions are in runtime/kernels/cpu_kernels.h.
#include "runtime/model/transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "runtime/base/splitmix.h"
#include "runtime/base/status_macros.h"
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
  int64_t B, T, P, S, N, C, E, V, F, FF1, QD, QKV, NH, NKV, HD;  // P: prefix; S = P + T keys.
  Architecture arch;
  explicit Dims(const ModelConfig& c, int b, int t, int p)
      : B(b),
        T(t),
        P(p),
        S(static_cast<int64_t>(p) + t),
        N(static_cast<int64_t>(b) * t),
        C(c.d_model),
        E(c.embed_dim()),
        V(c.vocab_size),
        F(c.d_ff),
        FF1(c.mlp_in_dim()),
        QD(c.q_dim()),
        QKV(c.qkv_dim()),
        NH(c.n_head),
        NKV(c.n_kv_head),
        HD(c.head_dim()),
        arch(c.arch()) {}
  // Floats of the q/k-norm input copy and its per-head rstd (zero without q/k norms).
  int64_t QkRaw() const { return arch.qk_norm ? N * QKV : 0; }
  int64_t QkRstd() const { return arch.qk_norm ? N * (NH + NKV) : 0; }
  // Floats of the embedding-width buffers OPT's projections need (zero without).
  int64_t Projected() const { return arch.projections ? N * E : 0; }
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

// Per-layer training activations, carved out of one buffer. Pre-norm blocks: ln1 = norm1(in),
// res1 = in + attention, ln2 = norm2(res1). Post-norm blocks (OPT-350m): ln1 = in + attention
// (norm1's input), res1 = norm1(ln1), ln2 = res1 + MLP (norm2's input).
struct LayerActs {
  float *ln1, *ln1_mean, *ln1_rstd, *qkv_raw, *qk_rstd, *qkv, *att, *atty, *res1, *ln2, *ln2_mean,
      *ln2_rstd, *fc, *fc_act;
  static int64_t Floats(const Dims& d) {
    return d.N * d.C * 3 + d.N * 4 + d.QkRaw() + d.QkRstd() + d.N * d.QKV + d.B * d.NH * d.T * d.S +
           d.N * d.QD + d.N * d.FF1 + d.N * d.F;
  }
  static LayerActs At(float* p, const Dims& d) {
    LayerActs a;
    Carver carve(p);
    a.ln1 = carve.Take(d.N * d.C);
    a.ln1_mean = carve.Take(d.N);
    a.ln1_rstd = carve.Take(d.N);
    a.qkv_raw = carve.Take(d.QkRaw());
    a.qk_rstd = carve.Take(d.QkRstd());
    a.qkv = carve.Take(d.N * d.QKV);
    a.att = carve.Take(d.B * d.NH * d.T * d.S);
    a.atty = carve.Take(d.N * d.QD);
    a.res1 = carve.Take(d.N * d.C);
    a.ln2 = carve.Take(d.N * d.C);
    a.ln2_mean = carve.Take(d.N);
    a.ln2_rstd = carve.Take(d.N);
    a.fc = carve.Take(d.N * d.FF1);
    a.fc_act = carve.Take(d.N * d.F);
    return a;
  }
};

// Global training buffers after the per-layer ones. emb/hin: the embedding-width input and head
// input when OPT's projections are present.
struct TrainGlobals {
  float *resid, *lnf, *lnf_mean, *lnf_rstd, *emb, *hin, *head, *dres, *dln, *dtmp, *dqkv, *dqkv_raw,
      *datty, *dfc, *dfc_act, *datt, *demb;
  int64_t head_rows;
  static int64_t Floats(const Dims& d, int L) {
    const int64_t rows = HeadChunkRows(kTrainHeadFloats, static_cast<int>(d.V), d.N);
    return (L + 1) * d.N * d.C + d.N * d.C + 2 * d.N + 3 * d.Projected() + rows * d.V +
           3 * d.N * d.C + d.N * d.QKV + d.QkRaw() + d.N * d.QD + d.N * d.FF1 + d.N * d.F +
           d.T * d.S + d.N * std::max(d.E, d.C);
  }
  static TrainGlobals At(float* p, const Dims& d, int L) {
    TrainGlobals g;
    Carver carve(p);
    g.head_rows = HeadChunkRows(kTrainHeadFloats, static_cast<int>(d.V), d.N);
    g.resid = carve.Take((L + 1) * d.N * d.C);
    g.lnf = carve.Take(d.N * d.C);
    g.lnf_mean = carve.Take(d.N);
    g.lnf_rstd = carve.Take(d.N);
    g.emb = carve.Take(d.Projected());
    g.hin = carve.Take(d.Projected());
    g.demb = carve.Take(d.Projected());
    g.head = carve.Take(g.head_rows * d.V);
    g.dres = carve.Take(d.N * d.C);
    g.dln = carve.Take(d.N * std::max(d.E, d.C));
    g.dtmp = carve.Take(d.N * d.C);
    g.datty = carve.Take(d.N * d.QD);
    g.dqkv = carve.Take(d.N * d.QKV);
    g.dqkv_raw = carve.Take(d.QkRaw());
    g.dfc = carve.Take(d.N * d.FF1);
    g.dfc_act = carve.Take(d.N * d.F);
    g.datt = carve.Take(d.T * d.S);
    return g;
  }
};

// Inference working set.
struct InferBuffers {
  float *x, *ln, *qkv_raw, *qkv, *atty, *tmp, *fc, *fc_act, *att, *emb, *hin, *head, *mx, *sum,
      *target_logit;
  int64_t head_rows;  // Token rows of one (rows, vocab chunk) logits tile.
  static int64_t VocabChunk(const Dims& d) {
    return std::min<int64_t>(d.V, Transformer::kHeadChunkRows);
  }
  static int64_t Floats(const Dims& d) {
    const int64_t rows = HeadChunkRows(kInferHeadFloats, static_cast<int>(VocabChunk(d)), d.N);
    return 3 * d.N * d.C + d.N * d.QD + d.QkRaw() + d.N * d.QKV + d.N * d.FF1 + d.N * d.F +
           d.T * d.S + 2 * d.Projected() + rows * VocabChunk(d) + 3 * d.N;
  }
  static InferBuffers At(float* p, const Dims& d) {
    InferBuffers b;
    Carver carve(p);
    b.head_rows = HeadChunkRows(kInferHeadFloats, static_cast<int>(VocabChunk(d)), d.N);
    b.x = carve.Take(d.N * d.C);
    b.ln = carve.Take(d.N * d.C);
    b.atty = carve.Take(d.N * d.QD);
    b.tmp = carve.Take(d.N * d.C);
    b.qkv_raw = carve.Take(d.QkRaw());
    b.qkv = carve.Take(d.N * d.QKV);
    b.fc = carve.Take(d.N * d.FF1);
    b.fc_act = carve.Take(d.N * d.F);
    b.att = carve.Take(d.T * d.S);
    b.emb = carve.Take(d.Projected());
    b.hin = carve.Take(d.Projected());
    b.head = carve.Take(b.head_rows * VocabChunk(d));
    b.mx = carve.Take(d.N);
    b.sum = carve.Take(d.N);
    b.target_logit = carve.Take(d.N);
    return b;
  }
};

// A norm of the family's kind (LayerNorm with bias, or RMSNorm). mean may be null for RMSNorm.
void NormForward(const Architecture& a, float* out, float* mean, float* rstd, const float* in,
                 const float* w, const float* bias, int64_t N, int C, float eps) {
  if (a.layer_norm) {
    k::layernorm_forward(out, mean, rstd, in, w, bias, N, C, eps);
  } else {
    k::rmsnorm_forward(out, rstd, in, w, N, C, eps);
  }
}

// dinp += d(in); dw, dbias += .
void NormBackward(const Architecture& a, float* dinp, float* dw, float* dbias, const float* dout,
                  const float* in, const float* w, const float* mean, const float* rstd, int64_t N,
                  int C) {
  if (a.layer_norm) {
    k::layernorm_backward(dinp, dw, dbias, dout, in, w, mean, rstd, N, C);
  } else {
    k::rmsnorm_backward(dinp, dw, dout, in, w, rstd, N, C);
  }
}

void ActivationForward(const Architecture& a, float* out, const float* fc, int64_t N, int F) {
  switch (a.mlp) {
    case MlpKind::kGeluTanh:
      k::gelu_forward(out, fc, N * F);
      return;
    case MlpKind::kRelu:
      k::relu_forward(out, fc, N * F);
      return;
    case MlpKind::kSwiGlu:
      k::swiglu_forward(out, fc, N, F);
      return;
  }
}

// dfc = d(fc) (overwritten).
void ActivationBackward(const Architecture& a, float* dfc, const float* fc, const float* dout,
                        int64_t N, int F) {
  switch (a.mlp) {
    case MlpKind::kGeluTanh:
      k::gelu_backward(dfc, fc, dout, N * F);
      return;
    case MlpKind::kRelu:
      k::relu_backward(dfc, fc, dout, N * F);
      return;
    case MlpKind::kSwiGlu:
      k::swiglu_backward(dfc, fc, dout, N, F);
      return;
  }
}

// x (B, T, C) += rows [offset, offset + T) of the position table, for every sequence.
void AddPositions(float* x, const float* wpe, int64_t B, int64_t T, int64_t C) {
  for (int64_t b = 0; b < B; ++b) k::residual_forward(x + b * T * C, x + b * T * C, wpe, T * C);
}

// Pointers to a block's parts (null where the family has none), over weights or gradients.
template <typename T>
struct Parts {
  const ParamLayout& layout;
  T* base;
  T* operator()(BlockPart part) const {
    const int64_t offset = layout.PartOffset(part);
    return offset < 0 || base == nullptr ? nullptr : base + offset;
  }
};

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
      rope_inv_freq_(config.arch().learned_positions ? std::vector<float>() : RopeInvFreq(config)),
      rope_scale_(RopeAttentionScale(config)) {
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
  const int64_t in_block = t.block >= 0 ? t.offset - layout_.BlockBegin(t.block) : -1;
  const bool residual_proj = c.family == ModelFamily::kGpt2 && t.block >= 0 &&
                             (in_block == layout_.PartOffset(BlockPart::kOW) ||
                              in_block == layout_.PartOffset(BlockPart::kDownW));
  const double stddev = residual_proj ? 0.02 / std::sqrt(2.0 * c.n_layer) : 0.02;
  // One stream per tensor: the bits of a tensor do not depend on the others' sizes.
  uint64_t state = TensorStream(seed, t.id);
  for (int64_t i = 0; i < t.numel; ++i) p[i] = static_cast<float>(Normal(state) * stddev);
}

absl::Status Transformer::CheckInputs(absl::Span<const int32_t> tokens,
                                      absl::Span<const int32_t> targets, int B, int T,
                                      bool need_targets) const {
  const ModelConfig& c = config();
  if (B <= 0 || T <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("batch ", B, " x seq ", T, " must be positive"));
  }
  if (T + PrefixLength() > c.max_seq_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence length ", T,
                     PrefixLength() > 0 ? absl::StrCat(" after a prefix of ", PrefixLength()) : "",
                     " exceeds the model's maximum ", c.max_seq_len));
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
  const int P = PrefixLength();
  if (B == train_B_ && T == train_T_ && P == train_P_) return;
  const Dims d(config(), B, T, P);
  train_.Resize(LayerActs::Floats(d) * config().n_layer +
                TrainGlobals::Floats(d, config().n_layer));
  train_B_ = B;
  train_T_ = T;
  train_P_ = P;
}

void Transformer::EnsureInferBuffers(int B, int T, int stream) {
  InferStream& s = infer_[stream];
  const int P = PrefixLength();
  if (B == s.B && T == s.T && P == s.P) return;
  s.buffer.Resize(InferBuffers::Floats(Dims(config(), B, T, P)));
  s.B = B;
  s.T = T;
  s.P = P;
}

k::AttentionShape Transformer::AttentionAt(int layer, int B, int T, int stream, bool grads) {
  const ModelConfig& c = config();
  k::AttentionShape shape;
  shape.B = B;
  shape.T = T;
  shape.NH = c.n_head;
  shape.NKV = c.n_kv_head;
  shape.HD = c.head_dim();
  shape.window = c.WindowOfLayer(layer);
  shape.prefix = PrefixLength();
  if (shape.prefix > 0) {
    const BlockAdapters::PrefixRows rows = adapters_->Prefix(layer, stream);
    shape.prefix_k = rows.keys;
    shape.prefix_v = rows.values;
    shape.prefix_ld = rows.ld;
    if (grads) {
      shape.dprefix_k = adapters_->PrefixKeyGrads(layer);
      shape.dprefix_v = adapters_->PrefixValueGrads(layer);
    }
  }
  return shape;
}

const float* Transformer::AttentionInputs(int stream) const {
  const InferStream& s = infer_[stream];
  const Dims d(config(), s.B, s.T, s.P);
  return InferBuffers::At(const_cast<float*>(s.buffer.data()), d).qkv;
}

const float* Transformer::HeadWeights(const float* base) const {
  const int id = layout_.head_id() >= 0 ? layout_.head_id() : layout_.token_embedding_id();
  return base + layout_.tensor(id).offset;
}

float Transformer::HeadLossChunked(const float* lnf, const float* head, const int32_t* targets,
                                   int64_t N, float* dlnf, float* dhead, int64_t max_chunk_rows,
                                   float* buffer, const float* token_weights) {
  const int C = config().embed_dim(), V = config().vocab_size;
  int64_t valid = 0;
  for (int64_t i = 0; i < N; ++i) valid += targets[i] >= 0;
  float scale = dlnf != nullptr ? 1.0f / static_cast<float>(valid) : 0.0f;
  if (dlnf != nullptr && token_weights != nullptr) scale = 1.0f;  // Rows scaled below.
  double total = 0.0;
  std::vector<float> losses(max_chunk_rows);
  for (int64_t r0 = 0; r0 < N; r0 += max_chunk_rows) {
    const int64_t rows = std::min(max_chunk_rows, N - r0);
    // logits (rows, V) = lnf[r0:] @ head^T.
    k::sgemm(false, true, rows, V, C, 1.0f, lnf + r0 * C, C, head, C, 0.0f, buffer, V);
    k::crossentropy_rows(buffer, losses.data(), targets + r0, rows, V, scale);
    for (int64_t r = 0; r < rows; ++r) total += losses[r];
    if (dlnf != nullptr && token_weights != nullptr) {
      for (int64_t r = 0; r < rows; ++r) {
        const float w = token_weights[r0 + r];
        if (w == 1.0f) continue;
        float* row = buffer + r * V;
        for (int v = 0; v < V; ++v) row[v] *= w;
      }
    }
    if (dlnf != nullptr) {
      k::sgemm(false, false, rows, C, V, 1.0f, buffer, V, head, C, 0.0f, dlnf + r0 * C, C);
      if (dhead != nullptr) {
        k::sgemm(true, false, V, C, rows, 1.0f, buffer, V, lnf + r0 * C, C, 1.0f, dhead, C);
      }
    }
  }
  return static_cast<float>(total / static_cast<double>(valid));
}

float Transformer::ObjectiveLoss(const float* nll, const int32_t* targets, int B, int T) const {
  std::vector<double> row_nll(B, 0.0);
  std::vector<int64_t> row_tokens(B, 0);
  for (int b = 0; b < B; ++b) {
    for (int t = 0; t < T; ++t) {
      const int64_t i = static_cast<int64_t>(b) * T + t;
      if (targets[i] < 0) continue;
      row_nll[b] += nll[i];
      ++row_tokens[b];
    }
  }
  return objective_->Loss(row_nll, row_tokens);
}

absl::StatusOr<std::vector<float>> Transformer::ObjectiveTokenWeights(
    const float* lnf, const float* head, const int32_t* targets, int B, int T,
    int64_t max_chunk_rows, float* buffer, float* loss) {
  const int C = config().embed_dim(), V = config().vocab_size;
  const int64_t N = static_cast<int64_t>(B) * T;
  std::vector<float> nll(N);
  for (int64_t r0 = 0; r0 < N; r0 += max_chunk_rows) {
    const int64_t rows = std::min(max_chunk_rows, N - r0);
    k::sgemm(false, true, rows, V, C, 1.0f, lnf + r0 * C, C, head, C, 0.0f, buffer, V);
    k::crossentropy_rows(buffer, nll.data() + r0, targets + r0, rows, V, 0.0f);
  }
  std::vector<double> row_nll(B, 0.0);
  std::vector<int64_t> row_tokens(B, 0);
  for (int64_t i = 0; i < N; ++i) {
    if (targets[i] < 0) continue;
    row_nll[i / T] += nll[i];
    ++row_tokens[i / T];
  }
  *loss = objective_->Loss(row_nll, row_tokens);
  std::vector<float> row_weights(B);
  STRATA_RETURN_IF_ERROR(objective_->RowWeights(row_nll, row_tokens, absl::MakeSpan(row_weights)));
  std::vector<float> weights(N, 0.0f);
  for (int64_t i = 0; i < N; ++i) {
    if (targets[i] >= 0) weights[i] = row_weights[i / T];
  }
  return weights;
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
    return grads_ == nullptr ? nullptr : grads_ + layout_.BlockBegin(layer);
  }
  absl::Status BlockGradsDone(int) override { return absl::OkStatus(); }
  absl::Status End() override { return absl::OkStatus(); }

 private:
  const ParamLayout& layout_;
  float* params_;
  float* grads_;
};

}  // namespace

void Transformer::SetAdapters(BlockAdapters* adapters, bool base_frozen) {
  adapters_ = adapters;
  base_frozen_ = adapters != nullptr && base_frozen;
}

void Transformer::Adapt(int layer, AdaptedSite site, const float* x, int64_t N, float* out,
                        int stream) {
  if (adapters_ != nullptr) adapters_->Forward(layer, site, x, N, out, stream);
}

void Transformer::AdaptBackward(int layer, AdaptedSite site, const float* x, const float* dout,
                                int64_t N, float* dx) {
  if (adapters_ != nullptr) adapters_->Backward(layer, site, x, dout, N, dx);
}

void Transformer::ReleaseBlockWeights() {
  params_.Discard(layout_.BlockBegin(0), layout_.BlockEnd(config().n_layer - 1));
}

absl::StatusOr<float> Transformer::ForwardBackward(absl::Span<const int32_t> tokens,
                                                   absl::Span<const int32_t> targets, int B, int T,
                                                   WeightSource* source) {
  if (absl::Status status = CheckInputs(tokens, targets, B, T, true); !status.ok()) return status;
  if (base_frozen_ && source != nullptr) {
    return absl::FailedPreconditionError(
        "a frozen base trains only its adapters: no weight source (ZeRO stage 3) takes part");
  }
  EnsureTrainBuffers(B, T);
  ArenaSource arena(layout_, params_.data(),
                    source == nullptr && !base_frozen_ ? grads().data() : nullptr);
  if (source == nullptr) source = &arena;
  const ModelConfig& c = config();
  const Dims d(c, B, T, PrefixLength());
  const Architecture& arch = d.arch;
  const int L = c.n_layer;
  const int64_t layer_floats = LayerActs::Floats(d);
  TrainGlobals g = TrainGlobals::At(train_.data() + layer_floats * L, d, L);
  const float* P = nullptr;
  float* G = nullptr;
  if (absl::Status status = source->Begin(&P, &G); !status.ok()) return status;
  auto tensor = [&](const float* base, int id) {
    return id < 0 ? nullptr : base + layout_.tensor(id).offset;
  };
  auto gtensor = [&](int id) {
    return id < 0 || G == nullptr ? nullptr : G + layout_.tensor(id).offset;
  };
  const int64_t N = d.N;
  const int C = static_cast<int>(d.C), E = static_cast<int>(d.E), F = static_cast<int>(d.F);
  const int QD = static_cast<int>(d.QD), QKV = static_cast<int>(d.QKV);
  const float* wpe = arch.learned_positions ? tensor(P, layout_.position_embedding_id()) +
                                                  (arch.position_offset + d.P) * d.C
                                            : nullptr;

  // Forward: embedding (and OPT's project_in), blocks, final norm (and project_out).
  const float* wte = tensor(P, layout_.token_embedding_id());
  if (arch.projections) {
    k::embedding_forward(g.emb, tokens.data(), wte, nullptr, B, T, E);
    k::matmul_forward(g.resid, g.emb, tensor(P, layout_.project_in_id()), nullptr, N, E, C);
    AddPositions(g.resid, wpe, B, T, d.C);
  } else {
    k::embedding_forward(g.resid, tokens.data(), wte, wpe, B, T, C);
  }
  for (int l = 0; l < L; ++l) {
    LayerActs a = LayerActs::At(train_.data() + layer_floats * l, d);
    absl::StatusOr<const float*> weights = source->BlockWeights(l, false);
    if (!weights.ok()) return weights.status();
    const Parts<const float> w{layout_, *weights};
    const float* in = g.resid + l * N * d.C;
    float* out = g.resid + (l + 1) * N * d.C;
    const k::AttentionShape shape = AttentionAt(l, B, T, 0, false);
    // Attention. Its input is norm1(in) (pre-norm) or in itself (post-norm).
    const float* attn_in = in;
    if (arch.pre_norm) {
      NormForward(arch, a.ln1, a.ln1_mean, a.ln1_rstd, in, w(BlockPart::kNorm1W),
                  w(BlockPart::kNorm1B), N, C, c.norm_eps);
      attn_in = a.ln1;
    }
    float* projected = arch.qk_norm ? a.qkv_raw : a.qkv;
    k::matmul_forward(projected, attn_in, w(BlockPart::kQkvW), w(BlockPart::kQkvB), N, C, QKV);
    Adapt(l, AdaptedSite::kQkv, attn_in, N, projected, 0);
    if (arch.qk_norm) {
      k::head_rmsnorm_forward(a.qkv, a.qk_rstd, a.qkv_raw, w(BlockPart::kQNorm),
                              w(BlockPart::kKNorm), N, c.n_head, c.n_kv_head, c.head_dim(),
                              c.norm_eps);
    }
    if (!arch.learned_positions) {
      k::rope_apply(a.qkv, B, T, c.n_head, c.n_kv_head, c.head_dim(), rope_inv_freq_.data(), false,
                    rope_scale_, static_cast<int>(d.P));
    }
    k::attention_forward(a.atty, a.att, nullptr, a.qkv, shape);
    if (arch.pre_norm) {
      k::matmul_forward(a.res1, a.atty, w(BlockPart::kOW), w(BlockPart::kOB), N, QD, C);
      Adapt(l, AdaptedSite::kO, a.atty, N, a.res1, 0);
      k::residual_forward(a.res1, a.res1, in, N * d.C);
      NormForward(arch, a.ln2, a.ln2_mean, a.ln2_rstd, a.res1, w(BlockPart::kNorm2W),
                  w(BlockPart::kNorm2B), N, C, c.norm_eps);
      k::matmul_forward(a.fc, a.ln2, w(BlockPart::kUpW), w(BlockPart::kUpB), N, C,
                        static_cast<int>(d.FF1));
      Adapt(l, AdaptedSite::kUp, a.ln2, N, a.fc, 0);
      ActivationForward(arch, a.fc_act, a.fc, N, F);
      k::matmul_forward(out, a.fc_act, w(BlockPart::kDownW), w(BlockPart::kDownB), N, F, C);
      Adapt(l, AdaptedSite::kDown, a.fc_act, N, out, 0);
      k::residual_forward(out, out, a.res1, N * d.C);
    } else {
      k::matmul_forward(a.ln1, a.atty, w(BlockPart::kOW), w(BlockPart::kOB), N, QD, C);
      Adapt(l, AdaptedSite::kO, a.atty, N, a.ln1, 0);
      k::residual_forward(a.ln1, a.ln1, in, N * d.C);
      NormForward(arch, a.res1, a.ln1_mean, a.ln1_rstd, a.ln1, w(BlockPart::kNorm1W),
                  w(BlockPart::kNorm1B), N, C, c.norm_eps);
      k::matmul_forward(a.fc, a.res1, w(BlockPart::kUpW), w(BlockPart::kUpB), N, C,
                        static_cast<int>(d.FF1));
      Adapt(l, AdaptedSite::kUp, a.res1, N, a.fc, 0);
      ActivationForward(arch, a.fc_act, a.fc, N, F);
      k::matmul_forward(a.ln2, a.fc_act, w(BlockPart::kDownW), w(BlockPart::kDownB), N, F, C);
      Adapt(l, AdaptedSite::kDown, a.fc_act, N, a.ln2, 0);
      k::residual_forward(a.ln2, a.ln2, a.res1, N * d.C);
      NormForward(arch, out, a.ln2_mean, a.ln2_rstd, a.ln2, w(BlockPart::kNorm2W),
                  w(BlockPart::kNorm2B), N, C, c.norm_eps);
    }
  }
  const float* last = g.resid + L * N * d.C;
  const float* lnf_w = tensor(P, layout_.final_norm_weight_id());
  const float* head_in = last;
  if (arch.final_norm) {
    NormForward(arch, g.lnf, g.lnf_mean, g.lnf_rstd, last, lnf_w,
                tensor(P, layout_.final_norm_bias_id()), N, C, c.norm_eps);
    head_in = g.lnf;
  }
  const float* w_out = tensor(P, layout_.project_out_id());
  if (arch.projections) {
    k::matmul_forward(g.hin, head_in, w_out, nullptr, N, C, E);
  }
  const int head_id = layout_.head_id() >= 0 ? layout_.head_id() : layout_.token_embedding_id();
  // Fused head: loss, d(head input) (into g.dln) and d(head) in one chunked pass. An objective
  // first needs every row's loss: one more loss-only pass over the head gives its weights.
  const float* hin = arch.projections ? g.hin : head_in;
  float loss = 0;
  if (objective_ != nullptr) {
    absl::StatusOr<std::vector<float>> weights = ObjectiveTokenWeights(
        hin, HeadWeights(P), targets.data(), B, T, g.head_rows, g.head, &loss);
    if (!weights.ok()) return weights.status();
    HeadLossChunked(hin, HeadWeights(P), targets.data(), N, g.dln, gtensor(head_id), g.head_rows,
                    g.head, weights->data());
  } else {
    loss = HeadLossChunked(hin, HeadWeights(P), targets.data(), N, g.dln, gtensor(head_id),
                           g.head_rows, g.head);
  }

  // Backward. g.dres accumulates d(residual stream).
  std::memset(g.dres, 0, sizeof(float) * N * d.C);
  float* dhead_in = g.dln;
  if (arch.projections) {
    k::matmul_backward(g.dtmp, gtensor(layout_.project_out_id()), nullptr, g.dln, head_in, w_out, N,
                       C, E, true);
    dhead_in = g.dtmp;
  }
  if (arch.final_norm) {
    NormBackward(arch, g.dres, gtensor(layout_.final_norm_weight_id()),
                 gtensor(layout_.final_norm_bias_id()), dhead_in, last, lnf_w, g.lnf_mean,
                 g.lnf_rstd, N, C);
  } else {
    k::residual_forward(g.dres, g.dres, dhead_in, N * d.C);
  }
  for (int l = L - 1; l >= 0; --l) {
    LayerActs a = LayerActs::At(train_.data() + layer_floats * l, d);
    absl::StatusOr<const float*> weights = source->BlockWeights(l, true);
    if (!weights.ok()) return weights.status();
    absl::StatusOr<float*> block_grads = source->BlockGrads(l);
    if (!block_grads.ok()) return block_grads.status();
    const Parts<const float> w{layout_, *weights};
    const Parts<float> gw{layout_, *block_grads};
    const float* in = g.resid + l * N * d.C;
    const k::AttentionShape shape = AttentionAt(l, B, T, 0, true);
    const float* attn_in = arch.pre_norm ? a.ln1 : in;
    const float* mlp_in = arch.pre_norm ? a.ln2 : a.res1;
    if (!arch.pre_norm) {
      // g.dres holds d(out): through norm2 to d(ln2) (= d(res1) via the residual).
      std::memset(g.dtmp, 0, sizeof(float) * N * d.C);
      NormBackward(arch, g.dtmp, gw(BlockPart::kNorm2W), gw(BlockPart::kNorm2B), g.dres, a.ln2,
                   w(BlockPart::kNorm2W), a.ln2_mean, a.ln2_rstd, N, C);
      std::memcpy(g.dres, g.dtmp, sizeof(float) * N * d.C);
    }
    // g.dres holds d(MLP output); the residual passes it to d(MLP input's residual).
    k::matmul_backward(g.dfc_act, gw(BlockPart::kDownW), gw(BlockPart::kDownB), g.dres, a.fc_act,
                       w(BlockPart::kDownW), N, F, C, true);
    AdaptBackward(l, AdaptedSite::kDown, a.fc_act, g.dres, N, g.dfc_act);
    ActivationBackward(arch, g.dfc, a.fc, g.dfc_act, N, F);
    k::matmul_backward(g.dln, gw(BlockPart::kUpW), gw(BlockPart::kUpB), g.dfc, mlp_in,
                       w(BlockPart::kUpW), N, C, static_cast<int>(d.FF1), true);
    AdaptBackward(l, AdaptedSite::kUp, mlp_in, g.dfc, N, g.dln);
    if (arch.pre_norm) {
      NormBackward(arch, g.dres, gw(BlockPart::kNorm2W), gw(BlockPart::kNorm2B), g.dln, a.res1,
                   w(BlockPart::kNorm2W), a.ln2_mean, a.ln2_rstd, N, C);
    } else {
      k::residual_forward(g.dres, g.dres, g.dln, N * d.C);  // d(res1).
      std::memset(g.dtmp, 0, sizeof(float) * N * d.C);
      NormBackward(arch, g.dtmp, gw(BlockPart::kNorm1W), gw(BlockPart::kNorm1B), g.dres, a.ln1,
                   w(BlockPart::kNorm1W), a.ln1_mean, a.ln1_rstd, N, C);
      std::memcpy(g.dres, g.dtmp, sizeof(float) * N * d.C);  // d(ln1) = d(attention output).
    }
    // g.dres holds d(attention output) = d(in) through the residual.
    k::matmul_backward(g.datty, gw(BlockPart::kOW), gw(BlockPart::kOB), g.dres, a.atty,
                       w(BlockPart::kOW), N, QD, C, true);
    AdaptBackward(l, AdaptedSite::kO, a.atty, g.dres, N, g.datty);
    k::attention_backward(g.dqkv, g.datt, g.datty, a.qkv, a.att, shape);
    if (!arch.learned_positions) {
      k::rope_apply(g.dqkv, B, T, c.n_head, c.n_kv_head, c.head_dim(), rope_inv_freq_.data(), true,
                    rope_scale_, static_cast<int>(d.P));
    }
    const float* dprojected = g.dqkv;
    if (arch.qk_norm) {
      k::head_rmsnorm_backward(g.dqkv_raw, gw(BlockPart::kQNorm), gw(BlockPart::kKNorm), g.dqkv,
                               a.qkv_raw, w(BlockPart::kQNorm), w(BlockPart::kKNorm), a.qk_rstd, N,
                               c.n_head, c.n_kv_head, c.head_dim());
      dprojected = g.dqkv_raw;
    }
    k::matmul_backward(g.dln, gw(BlockPart::kQkvW), gw(BlockPart::kQkvB), dprojected, attn_in,
                       w(BlockPart::kQkvW), N, C, QKV, true);
    AdaptBackward(l, AdaptedSite::kQkv, attn_in, dprojected, N, g.dln);
    if (arch.pre_norm) {
      NormBackward(arch, g.dres, gw(BlockPart::kNorm1W), gw(BlockPart::kNorm1B), g.dln, in,
                   w(BlockPart::kNorm1W), a.ln1_mean, a.ln1_rstd, N, C);
    } else {
      k::residual_forward(g.dres, g.dres, g.dln, N * d.C);
    }
    if (absl::Status status = source->BlockGradsDone(l); !status.ok()) return status;
  }
  float* dwpe = arch.learned_positions && G != nullptr
                    ? gtensor(layout_.position_embedding_id()) + (arch.position_offset + d.P) * d.C
                    : nullptr;
  if (G == nullptr) {
    // Frozen base: no embedding gradients.
  } else if (arch.projections) {
    for (int b = 0; b < B; ++b) k::residual_forward(dwpe, dwpe, g.dres + b * T * d.C, T * d.C);
    k::matmul_backward(g.demb, gtensor(layout_.project_in_id()), nullptr, g.dres, g.emb,
                       tensor(P, layout_.project_in_id()), N, E, C, true);
    k::embedding_backward(gtensor(layout_.token_embedding_id()), nullptr, g.demb, tokens.data(), B,
                          T, E);
  } else {
    k::embedding_backward(gtensor(layout_.token_embedding_id()), dwpe, g.dres, tokens.data(), B, T,
                          C);
  }
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
  const Dims d(config(), B, T, PrefixLength());
  const Architecture& arch = d.arch;
  InferBuffers b = InferBuffers::At(infer_[stream].buffer.data(), d);
  const float* wpe = arch.learned_positions
                         ? resident + layout_.tensor(layout_.position_embedding_id()).offset +
                               (arch.position_offset + d.P) * d.C
                         : nullptr;
  const float* wte = token_embedding != nullptr
                         ? token_embedding
                         : resident + layout_.tensor(layout_.token_embedding_id()).offset;
  if (arch.projections) {
    k::embedding_forward(b.emb, tokens.data(), wte, nullptr, B, T, static_cast<int>(d.E));
    k::matmul_forward(b.x, b.emb, resident + layout_.tensor(layout_.project_in_id()).offset,
                      nullptr, d.N, static_cast<int>(d.E), static_cast<int>(d.C));
    AddPositions(b.x, wpe, B, T, d.C);
  } else {
    k::embedding_forward(b.x, tokens.data(), wte, wpe, B, T, static_cast<int>(d.C));
  }
  return absl::OkStatus();
}

float* Transformer::ResidualStream(int stream) {
  const Dims d(config(), infer_[stream].B, infer_[stream].T, infer_[stream].P);
  return InferBuffers::At(infer_[stream].buffer.data(), d).x;
}

void Transformer::BlockForward(int layer, const float* block_weights, int stream) {
  BlockForwardInfer(layer, block_weights, stream);
}

void Transformer::BlockForwardInfer(int layer, const float* weights, int stream) {
  const ModelConfig& c = config();
  const int B = infer_[stream].B, T = infer_[stream].T;
  const Dims d(c, B, T, infer_[stream].P);
  const Architecture& arch = d.arch;
  InferBuffers b = InferBuffers::At(infer_[stream].buffer.data(), d);
  const Parts<const float> w{layout_, weights};
  const int64_t N = d.N;
  const int C = static_cast<int>(d.C), F = static_cast<int>(d.F);
  const int QD = static_cast<int>(d.QD), QKV = static_cast<int>(d.QKV);
  const float* attn_in = b.x;
  if (arch.pre_norm) {
    NormForward(arch, b.ln, nullptr, nullptr, b.x, w(BlockPart::kNorm1W), w(BlockPart::kNorm1B), N,
                C, c.norm_eps);
    attn_in = b.ln;
  }
  float* projected = arch.qk_norm ? b.qkv_raw : b.qkv;
  k::matmul_forward(projected, attn_in, w(BlockPart::kQkvW), w(BlockPart::kQkvB), N, C, QKV);
  Adapt(layer, AdaptedSite::kQkv, attn_in, N, projected, stream);
  if (arch.qk_norm) {
    k::head_rmsnorm_forward(b.qkv, nullptr, b.qkv_raw, w(BlockPart::kQNorm), w(BlockPart::kKNorm),
                            N, c.n_head, c.n_kv_head, c.head_dim(), c.norm_eps);
  }
  if (!arch.learned_positions) {
    k::rope_apply(b.qkv, B, T, c.n_head, c.n_kv_head, c.head_dim(), rope_inv_freq_.data(), false,
                  rope_scale_, static_cast<int>(d.P));
  }
  k::attention_forward(b.atty, nullptr, b.att, b.qkv, AttentionAt(layer, B, T, stream, false));
  k::matmul_forward(b.tmp, b.atty, w(BlockPart::kOW), w(BlockPart::kOB), N, QD, C);
  Adapt(layer, AdaptedSite::kO, b.atty, N, b.tmp, stream);
  k::residual_forward(b.x, b.x, b.tmp, N * d.C);
  if (!arch.pre_norm) {
    NormForward(arch, b.x, nullptr, nullptr, b.x, w(BlockPart::kNorm1W), w(BlockPart::kNorm1B), N,
                C, c.norm_eps);
  }
  const float* mlp_in = b.x;
  if (arch.pre_norm) {
    NormForward(arch, b.ln, nullptr, nullptr, b.x, w(BlockPart::kNorm2W), w(BlockPart::kNorm2B), N,
                C, c.norm_eps);
    mlp_in = b.ln;
  }
  k::matmul_forward(b.fc, mlp_in, w(BlockPart::kUpW), w(BlockPart::kUpB), N, C,
                    static_cast<int>(d.FF1));
  Adapt(layer, AdaptedSite::kUp, mlp_in, N, b.fc, stream);
  ActivationForward(arch, b.fc_act, b.fc, N, F);
  k::matmul_forward(b.tmp, b.fc_act, w(BlockPart::kDownW), w(BlockPart::kDownB), N, F, C);
  Adapt(layer, AdaptedSite::kDown, b.fc_act, N, b.tmp, stream);
  k::residual_forward(b.x, b.x, b.tmp, N * d.C);
  if (!arch.pre_norm) {
    NormForward(arch, b.x, nullptr, nullptr, b.x, w(BlockPart::kNorm2W), w(BlockPart::kNorm2B), N,
                C, c.norm_eps);
  }
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
  const Dims d(c, B, T, infer_[stream].P);
  InferBuffers b = InferBuffers::At(infer_[stream].buffer.data(), d);
  const float* head_in = HeadInput(resident, b.x, b.ln, b.hin, d.N);
  // Vocabulary chunk outer, token rows inner: each head chunk is produced once per call.
  const int64_t N = d.N, E = d.E, V = d.V, chunk = InferBuffers::VocabChunk(d);
  std::fill(b.mx, b.mx + N, -std::numeric_limits<float>::infinity());
  std::fill(b.sum, b.sum + N, 0.0f);
  std::fill(b.target_logit, b.target_logit + N, 0.0f);
  const float* head = HeadWeights(resident);
  for (int64_t v0 = 0; v0 < V; v0 += chunk) {
    const int64_t n = std::min(chunk, V - v0);
    const float* w = head_rows != nullptr ? head_rows(v0, n) : head + v0 * E;
    for (int64_t r0 = 0; r0 < N; r0 += b.head_rows) {
      const int64_t rows = std::min(b.head_rows, N - r0);
      k::sgemm(false, true, rows, n, E, 1.0f, head_in + r0 * E, E, w, E, 0.0f, b.head, n);
      k::crossentropy_chunk(b.head, rows, static_cast<int>(n), v0, targets.data() + r0, b.mx + r0,
                            b.sum + r0, b.target_logit + r0);
    }
  }
  if (objective_ != nullptr) {
    // Per-token losses in place of the running sums (no longer needed).
    for (int64_t i = 0; i < N; ++i) {
      if (targets[i] >= 0) b.sum[i] = std::log(b.sum[i]) + b.mx[i] - b.target_logit[i];
    }
    return ObjectiveLoss(b.sum, targets.data(), B, T);
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

const float* Transformer::HeadInput(const float* base, const float* x, float* normed,
                                    float* projected, int64_t N) const {
  const ModelConfig& c = config();
  const Architecture a = c.arch();
  const float* h = x;
  if (a.final_norm) {
    const int bias_id = layout_.final_norm_bias_id();
    NormForward(a, normed, nullptr, nullptr, x,
                base + layout_.tensor(layout_.final_norm_weight_id()).offset,
                bias_id < 0 ? nullptr : base + layout_.tensor(bias_id).offset, N, c.d_model,
                c.norm_eps);
    h = normed;
  }
  if (!a.projections) return h;
  k::matmul_forward(projected, h, base + layout_.tensor(layout_.project_out_id()).offset, nullptr,
                    N, c.d_model, c.embed_dim());
  return projected;
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
  const Dims d(config(), B, T, infer_[0].P);
  InferBuffers b = InferBuffers::At(infer_[0].buffer.data(), d);
  const float* head_in = HeadInput(params_.data(), b.x, b.ln, b.hin, d.N);
  k::sgemm(false, true, d.N, d.V, d.E, 1.0f, head_in, d.E, HeadWeights(params_.data()), d.E, 0.0f,
           logits, d.V);
  return absl::OkStatus();
}

absl::Status Transformer::StreamLogits(const float* resident, int64_t row, int stream,
                                       float* logits) {
  if (stream < 0 || stream >= kStreams || !infer_[stream].active) {
    return absl::FailedPreconditionError(
        absl::StrCat("StreamLogits without BeginForward on stream ", stream));
  }
  const InferStream& s = infer_[stream];
  const Dims d(config(), s.B, s.T, s.P);
  if (row < 0 || row >= d.N) {
    return absl::InvalidArgumentError(
        absl::StrCat("StreamLogits row ", row, " is outside the stream's ", d.N, " rows"));
  }
  InferBuffers b = InferBuffers::At(infer_[stream].buffer.data(), d);
  // The head's input of the one row, in the first row of the norm and projection buffers.
  const float* head_in = HeadInput(resident, b.x + row * d.C, b.ln, b.hin, 1);
  k::sgemm(false, true, 1, d.V, d.E, 1.0f, head_in, d.E, HeadWeights(resident), d.E, 0.0f, logits,
           d.V);
  return absl::OkStatus();
}

}  // namespace strata
