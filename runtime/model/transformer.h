// A decoder-only transformer (any family of model_config.h) on the CPU: forward, backward and a
// loss-only forward that keeps inference memory, over one contiguous fp32 parameter arena laid
// out by ParamLayout.
//
// Three ways to run it:
// - ForwardBackward: training. Keeps every block's activations, returns the mean loss and
//   accumulates the gradient into grads(). The output head (cross-entropy) is fused and chunked:
//   full (B, T, V) logits are never held. With a WeightSource, the weights and gradients live
//   outside the arena (ZeRO stage 3 gathers each block just in time and scatters its gradient as
//   soon as the block's backward is done).
// - Loss: inference memory, for zeroth-order training. Activations are reused block to block.
// - BeginForward / BlockForward / EndForward: the same loss-only pass one block at a time with
//   caller-provided weights (offloaded training streams blocks through a bounded working set;
//   ZO computes perturbed weights out of place), so a block's weights need not live in the arena.
//
// Thread count: the compute thread pool (row kernels) and OpenBLAS (matmuls) both use
// `threads`.
#ifndef STRATA_RUNTIME_MODEL_TRANSFORMER_H_
#define STRATA_RUNTIME_MODEL_TRANSFORMER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/base/aligned_buffer.h"
#include "runtime/base/lazy_buffer.h"
#include "runtime/kernels/attention.h"
#include "runtime/model/model_config.h"
#include "runtime/model/param_layout.h"
#include "runtime/model/sequence_objective.h"

namespace strata {

// The block matmuls low-rank adapters attach to (runtime/peft): the fused QKV projection, the
// attention output, the MLP's first matrix (fc, or fused gate/up) and its second.
enum class AdaptedSite { kQkv, kO, kUp, kDown };

class Transformer {
 public:
  struct Options {
    int threads = 0;  // 0: leave the process's thread pool and OpenBLAS settings alone.
  };

  static absl::StatusOr<std::unique_ptr<Transformer>> Create(const ModelConfig& config,
                                                             Options options);
  static absl::StatusOr<std::unique_ptr<Transformer>> Create(const ModelConfig& config) {
    return Create(config, Options());
  }

  const ModelConfig& config() const { return layout_.config(); }
  const ParamLayout& layout() const { return layout_; }

  // The parameter arena: layout().NumElements() floats, 64-byte aligned.
  absl::Span<float> params() { return params_.span(); }
  absl::Span<const float> params() const { return params_.span(); }
  // The gradient arena (same layout), allocated on first use.
  absl::Span<float> grads();
  void ZeroGrads();
  // Bytes of the gradient arena (0 until grads() is first used).
  int64_t GradientBytes() const { return static_cast<int64_t>(sizeof(float)) * grads_.size(); }

  // Hugging Face-style initialization from `seed`: weights N(0, 0.02) (GPT-2's residual
  // projections N(0, 0.02 / sqrt(2 L))), biases 0, norm weights 1. Same seed, same bits.
  void InitializeParameters(uint64_t seed);
  // The same initial values of one tensor, written to `out` (numel floats) — each tensor has its
  // own random stream, so blocks can be initialized anywhere (e.g. straight into offload slots).
  void InitializeTensor(uint64_t seed, int tensor_id, float* out) const;
  // The same for the tensors that start in arena elements [begin, end) (a range of whole
  // tensors), written to `out` as if it were the arena at `begin`.
  void InitializeRange(uint64_t seed, int64_t begin, int64_t end, float* out) const;

  // Where a training pass reads weights and puts gradients. Calls come in a fixed order:
  // Begin; BlockWeights(0, false) ... BlockWeights(L-1, false); then for l = L-1 down to 0:
  // BlockWeights(l, true), BlockGrads(l), BlockGradsDone(l); then End. Block buffers are in
  // block layout (as layout() lays out every block).
  class WeightSource {
   public:
    virtual ~WeightSource() = default;
    // Arena-layout buffers whose non-block tensors hold the weights and accumulate their
    // gradient (the block region is not touched).
    virtual absl::Status Begin(const float** resident, float** resident_grads) = 0;
    // Layer `layer`'s weights, valid until the next BlockWeights call.
    virtual absl::StatusOr<const float*> BlockWeights(int layer, bool backward) = 0;
    // Where layer `layer`'s gradient is accumulated, and the call once it is complete.
    virtual absl::StatusOr<float*> BlockGrads(int layer) = 0;
    virtual absl::Status BlockGradsDone(int layer) = 0;
    // After the backward pass: the non-block gradients are complete.
    virtual absl::Status End() = 0;
  };

  // tokens, targets: (B, T) row-major; targets < 0 are ignored. Returns the mean loss over
  // non-ignored targets and adds d(loss)/d(params) to grads() — or, with `source`, reads the
  // weights from it and gives it the gradients (the arena and grads() are not used).
  absl::StatusOr<float> ForwardBackward(absl::Span<const int32_t> tokens,
                                        absl::Span<const int32_t> targets, int B, int T,
                                        WeightSource* source = nullptr);

  // Trainable additions to the block matmuls (LoRA). Called right after each base matmul of a
  // block, on every path (training, loss-only, block-at-a-time).
  class BlockAdapters {
   public:
    virtual ~BlockAdapters() = default;
    // out (N rows, the site's full output width) += the adapters' output for input x (N rows,
    // the site's input width). `stream` is the inference stream (0 when training).
    virtual void Forward(int layer, AdaptedSite site, const float* x, int64_t N, float* out,
                         int stream) = 0;
    // Given d(out), accumulates the adapters' gradients and adds their part of d(x) to dx.
    virtual void Backward(int layer, AdaptedSite site, const float* x, const float* dout, int64_t N,
                          float* dx) = 0;

    // Prefix tuning: PrefixLength() cached key/value rows every layer's attention sees before
    // the sequence's own tokens, which then sit at positions PrefixLength() onwards (learned
    // position rows and RoPE angles shift with them), as a Hugging Face model given
    // past_key_values of that length. 0: none.
    virtual int PrefixLength() const { return 0; }
    struct PrefixRows {
      const float* keys = nullptr;  // (PrefixLength() rows, ld apart) x kv_dim.
      const float* values = nullptr;
      int64_t ld = 0;
    };
    // Layer `layer`'s prefix for inference stream `stream` (0 when training).
    virtual PrefixRows Prefix(int /*layer*/, int /*stream*/) { return {}; }
    // Where the backward adds layer `layer`'s prefix gradients (the Prefix layout); null: none.
    virtual float* PrefixKeyGrads(int /*layer*/) { return nullptr; }
    virtual float* PrefixValueGrads(int /*layer*/) { return nullptr; }
  };
  // Attaches `adapters` (null detaches; not owned). With `base_frozen`, ForwardBackward computes
  // no gradient of the model's own parameters (and never allocates grads()): only the
  // adapters' gradients, through their Backward.
  void SetAdapters(BlockAdapters* adapters, bool base_frozen);
  bool base_frozen() const { return base_frozen_; }
  BlockAdapters* adapters() const { return adapters_; }
  // The attached adapters' prefix length (0 without).
  int PrefixLength() const { return adapters_ != nullptr ? adapters_->PrefixLength() : 0; }
  // The q, k, v rows ((B, T) x qkv_dim, after RoPE and q/k norms) of the block BlockForward last
  // ran on `stream`: the keys and values a cache of those tokens holds.
  const float* AttentionInputs(int stream) const;
  // Ends a BeginForward of `stream` without computing a loss.
  void AbandonForward(int stream) { infer_[stream].active = false; }

  // What Loss, EndForward and ForwardBackward return: with an objective (not owned; null
  // detaches), its value over the batch's rows (B rows of T tokens; each row's summed token
  // losses), and ForwardBackward's gradient is that objective's; without one, the mean loss of
  // the targets that are not ignored. Rows may be right-padded: a padded position's target is
  // ignored, and causal attention keeps every real token's result that of the row alone.
  void SetObjective(const SequenceObjective* objective) { objective_ = objective; }
  const SequenceObjective* objective() const { return objective_; }

  // Returns the pages of the arena's block region to the system (they read as zeros after):
  // for a model whose blocks live elsewhere (ZeRO stage 3) once its shards have been taken.
  void ReleaseBlockWeights();

  // The same loss with inference memory, reading weights from `params` (the arena by default).
  absl::StatusOr<float> Loss(absl::Span<const int32_t> tokens, absl::Span<const int32_t> targets,
                             int B, int T, const float* params = nullptr);

  // logits: (B, T, V).
  absl::Status Logits(absl::Span<const int32_t> tokens, int B, int T, float* logits);
  // logits: (V) of row `row` (of B * T) of `stream`'s residual stream after its last
  // BlockForward, through the final norm, OPT's project_out and the head, weights from `resident`
  // (arena layout): the next-token logits of one position, for decoding. The forward stays in
  // flight (the residual stream is not changed): end it with AbandonForward or EndForward.
  absl::Status StreamLogits(const float* resident, int64_t row, int stream, float* logits);

  // Block-at-a-time loss-only forward. `resident` points to an arena-layout buffer whose
  // non-block tensors are valid (embeddings, final norm, head); `block_weights` points to a
  // block's first weight, laid out as layout() lays out every block. Two independent streams
  // (0 and 1) can be in flight at once, so a block can run both perturbed forwards of a ZO
  // step while it is resident.
  //
  // The head's cross-entropy runs over vocabulary chunks of kHeadChunkRows rows (online
  // softmax). EndForward takes the head from `resident`, or chunk by chunk from `head_rows`:
  // head_rows(row0, rows) returns rows [row0, row0 + rows) of the (vocab, embed_dim) head as this
  // stream sees them, valid until the next call — a caller can produce the head on the fly
  // (offloaded ZO perturbs it chunk by chunk) instead of holding a copy. Likewise BeginForward
  // reads token embeddings from `token_embedding` (rows indexed by `tokens`) when it is set.
  static constexpr int kStreams = 2;
  static constexpr int64_t kHeadChunkRows = 4096;
  using HeadRows = std::function<const float*(int64_t row0, int64_t rows)>;
  absl::Status BeginForward(const float* resident, absl::Span<const int32_t> tokens, int B, int T,
                            int stream = 0, const float* token_embedding = nullptr);
  void BlockForward(int layer, const float* block_weights, int stream = 0);
  absl::StatusOr<float> EndForward(const float* resident, absl::Span<const int32_t> targets,
                                   int stream = 0, const HeadRows& head_rows = nullptr);

  // The residual stream (B x T x d_model floats) of `stream` between BeginForward and
  // EndForward: where a block executor elsewhere (a GPU) reads and returns the activations.
  float* ResidualStream(int stream);

  // Bytes held by activation buffers (training and inference) at the moment.
  int64_t ActivationBytes() const;

 private:
  explicit Transformer(const ModelConfig& config, Options options);

  absl::Status CheckInputs(absl::Span<const int32_t> tokens, absl::Span<const int32_t> targets,
                           int B, int T, bool need_targets) const;
  // targets has n entries, each < vocab_size, at least one not ignored (>= 0).
  absl::Status CheckTargets(absl::Span<const int32_t> targets, int64_t n) const;
  void EnsureTrainBuffers(int B, int T);
  void EnsureInferBuffers(int B, int T, int stream);
  const float* HeadWeights(const float* base) const;
  // The head's input (N, embed_dim) from the last residual stream x (N, d_model): the final
  // norm (into `normed`) and OPT's project_out (into `projected`) where the family has them,
  // weights from `base` (arena layout).
  const float* HeadInput(const float* base, const float* x, float* normed, float* projected,
                         int64_t N) const;
  // Inference block forward of `stream` (its residual stream in place).
  void BlockForwardInfer(int layer, const float* w, int stream);
  void Adapt(int layer, AdaptedSite site, const float* x, int64_t N, float* out, int stream);
  void AdaptBackward(int layer, AdaptedSite site, const float* x, const float* dout, int64_t N,
                     float* dx);
  // Chunked output head: loss, and with `dlnf`/`dhead` the head's backward. Each target's
  // loss is weighted by token_weights[i] in the gradient when given (1 / valid targets
  // without).
  float HeadLossChunked(const float* lnf, const float* head, const int32_t* targets, int64_t N,
                        float* dlnf, float* dhead, int64_t max_chunk_rows, float* logits_buffer,
                        const float* token_weights = nullptr);
  // With an objective: the per-token weights of its gradient for a batch of B rows, from one
  // loss-only pass over the head (its value into *loss).
  absl::StatusOr<std::vector<float>> ObjectiveTokenWeights(const float* lnf, const float* head,
                                                           const int32_t* targets, int B, int T,
                                                           int64_t max_chunk_rows,
                                                           float* logits_buffer, float* loss);
  // The objective's value over per-token losses `nll` (N = B * T; ignored targets skipped).
  float ObjectiveLoss(const float* nll, const int32_t* targets, int B, int T) const;

  ParamLayout layout_;
  Options options_;
  // Committed lazily (page by page, as written): an offloaded model whose blocks live elsewhere
  // never pays for the block region.
  LazyBuffer params_;
  AlignedBuffer grads_;
  // The rotary inverse frequencies of RoPE families (rope_frequencies.h), head_dim / 2 of them.
  std::vector<float> rope_inv_freq_;
  float rope_scale_ = 1.0f;  // RopeAttentionScale: yarn's cos/sin factor.
  BlockAdapters* adapters_ = nullptr;
  bool base_frozen_ = false;
  const SequenceObjective* objective_ = nullptr;

  // Attention's shape at layer `layer` (with the prefix of `stream` and, when `grads`, its
  // gradient destinations).
  kernels::AttentionShape AttentionAt(int layer, int B, int T, int stream, bool grads);

  // Training activations: one slice per layer.
  AlignedBuffer train_;
  int train_B_ = 0, train_T_ = 0, train_P_ = 0;
  // Inference working sets, one per stream.
  struct InferStream {
    AlignedBuffer buffer;
    int B = 0, T = 0, P = 0;  // Shape the buffer was sized for (P: the prefix length).
    bool active = false;      // Between BeginForward and EndForward.
  };
  InferStream infer_[kStreams];
};

}  // namespace strata

#endif  // STRATA_RUNTIME_MODEL_TRANSFORMER_H_
