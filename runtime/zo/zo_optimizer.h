// Zeroth-order optimization of a Transformer (MeZO and its family), with perturbations formed
// out of place and the update of step t-1 fused into step t.
//
// One step on a batch, for each perturbation i < q (n-SPSA):
//   - every tensor, the first time it is touched in the step, first receives the pending update
//     of the previous step (deferred, as ZO2 does), then is perturbed out of place:
//     w+ = theta + eps z_i and w- = theta - eps z_i (one-sided: w- = theta), one block at a
//     time into two block-sized buffers; the small resident tensors (norms, position
//     embeddings) into two lazily committed arena-layout buffers; of the token embedding only
//     the rows the batch uses, and the head chunk by chunk while the loss is computed — the
//     large tensors are never copied;
//   - both forwards run block by block while the block's weights are at hand (two streams);
//   - the projected gradient g_i = (L+ - L-) / (2 eps) (one-sided: (L+ - L) / eps), clipped.
// The update theta -= lr (g z + wd theta) of step t is recorded and applied at the start of
// step t+1 or by Flush() (before evaluation, checkpoints and export), in exactly the arithmetic
// Replay() uses, so theta after replaying a step log equals the trained theta bit for bit.
//
// Passes over the parameters per step: one read + one write of theta (update, then perturb, in
// the same tile pass), noise generated twice per element and perturbation (z_{t-1} for the
// update, z_t for the perturbation), never stored for more than one 4096-element tile.
#ifndef STRATA_RUNTIME_ZO_ZO_OPTIMIZER_H_
#define STRATA_RUNTIME_ZO_ZO_OPTIMIZER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/base/aligned_buffer.h"
#include "runtime/base/lazy_buffer.h"
#include "runtime/model/transformer.h"
#include "runtime/zo/zo_kernels.h"

namespace strata::zo {

enum class ZoVariant { kSgd, kSign, kMomentum, kAdam };

struct ZoConfig {
  ZoVariant variant = ZoVariant::kSgd;
  bool one_sided = false;
  Distribution distribution = Distribution::kGaussian;
  float eps = 1e-3f;
  int num_perturbations = 1;  // q. Momentum and Adam need q = 1.
  float weight_decay = 0.0f;  // Never applied to norms and biases.
  float momentum = 0.9f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float adam_eps = 1e-8f;
  // Sparse-MeZO: per tensor, only weights with |theta| below the `sparse_quantile` quantile of
  // the initial |theta| are perturbed and updated. 0 disables.
  float sparse_quantile = 0.0f;
  float scalar_clip = 0.0f;    // |g| is clipped to this; 0 disables.
  bool skip_nonfinite = true;  // A step with a non-finite loss changes nothing.
  uint64_t seed = 0;           // Master seed; step t uses StepSeed(seed, t).
};

// What one step did: enough to replay it.
struct ZoStepRecord {
  int64_t step = 0;  // 1-based.
  uint64_t seed = 0;
  std::vector<float> scalars;  // g_i, one per perturbation.
  double lr = 0;
  bool skipped = false;
  float loss = 0;  // Mean of the perturbed losses (progress only).
};

// The seed of step `step` under master seed `seed` (splitmix64).
uint64_t StepSeed(uint64_t seed, int64_t step);

// The fp32 multiplier of z in an sgd/sign update for perturbation i of a record: lr times g_i
// (sign: its sign) over q, computed in double and cast once, in Step and Replay alike.
float CoefficientFor(const ZoConfig& config, const ZoStepRecord& record, size_t i);

// The update a record makes to every tensor, for the stateless variants (sgd, sign): for each
// perturbation i in order, theta = (theta - coefs[i] z_i) - (i == 0 ? decay : 0) theta, where
// decay applies only to tensors whose role takes weight decay, and z is masked where |theta| is
// at or above the tensor's Sparse-MeZO threshold (zo_kernels.h: UpdateSgd).
struct SgdUpdate {
  uint64_t seed = 0;
  Distribution distribution = Distribution::kGaussian;
  std::vector<float> coefs;
  float decay = 0;
};

// Runs the block part of a step somewhere other than the CPU (a GPU). The step calls Begin
// once both forward streams hold their embeddings (host residuals, N x d_model floats;
// `minus` is null when the second stream does not run), Block for each block in order, and End
// before the head, which writes the streams' residuals back into the same host buffers.
// Block receives the block's fp32 weights (host memory); when `update` is set it applies it and
// leaves the updated weights in `weights` before returning; then it perturbs the block with `key`
// (one-sided: the second stream runs the block's own weights) and runs both forwards, which may
// still be running when Block returns.
class BlockExecutor {
 public:
  virtual ~BlockExecutor() = default;
  virtual absl::Status Begin(const float* plus, const float* minus, int B, int T) = 0;
  virtual absl::Status Block(int layer, float* weights, const SgdUpdate* update,
                             const NoiseKey& key) = 0;
  virtual absl::Status End(float* plus, float* minus) = 0;
};

class ZoOptimizer {
 public:
  // Blocks reached through a visitor instead of the model's arena (offloaded training):
  // blocks(fn) calls fn(layer, weights) for layers 0..L-1 in order; fn may change the block's
  // fp32 weights and returns whether it did (the stream then writes the block back).
  using BlockVisitor = std::function<absl::StatusOr<bool>(int layer, float* weights)>;
  using BlockStream = std::function<absl::Status(const BlockVisitor& fn)>;

  // `model` must outlive the optimizer.
  static absl::StatusOr<std::unique_ptr<ZoOptimizer>> Create(Transformer* model, ZoConfig config);

  // One step on (tokens, targets) of shape (B, T) with learning rate `lr`; `step` is 1-based.
  // The resident tensors are the model's arena's; the blocks are the arena's or `blocks`'.
  absl::StatusOr<ZoStepRecord> Step(absl::Span<const int32_t> tokens,
                                    absl::Span<const int32_t> targets, int B, int T, int64_t step,
                                    double lr);
  // With `executor`, the blocks compute there (sgd and sign variants).
  absl::StatusOr<ZoStepRecord> Step(absl::Span<const int32_t> tokens,
                                    absl::Span<const int32_t> targets, int B, int T, int64_t step,
                                    double lr, const BlockStream& blocks,
                                    BlockExecutor* executor = nullptr);

  // The next Step perturbs with `seed` instead of StepSeed(config.seed, step) (federated
  // clients draw each step's seed from the job's candidate list).
  void SetNextSeed(uint64_t seed) { next_seed_ = seed; }

  // Applies the pending update, if any.
  void Flush();
  absl::Status Flush(const BlockStream& blocks);
  bool has_pending() const { return pending_.has_value(); }

  // Applies a recorded step to the model (no pending update may exist).
  absl::Status Replay(const ZoStepRecord& record);
  absl::Status Replay(const ZoStepRecord& record, const BlockStream& blocks);

  const ZoConfig& config() const { return config_; }
  // `record`'s update in SGD form (sgd and sign variants only).
  SgdUpdate SgdUpdateOf(const ZoStepRecord& record) const;

  // Per-tensor Sparse-MeZO thresholds (+inf when disabled), set at Create from the weights.
  const std::vector<float>& thresholds() const { return thresholds_; }
  void set_thresholds(std::vector<float> thresholds) { thresholds_ = std::move(thresholds); }
  // Optimizer state for momentum (m) and Adam (m, v, updates applied).
  absl::Span<float> m() { return m_.span(); }
  absl::Span<float> v() { return v_.span(); }
  int64_t adam_updates() const { return adam_updates_; }
  void set_adam_updates(int64_t n) { adam_updates_ = n; }

  // Bytes a step holds besides the weights and activations: the perturbed copies of the small
  // resident tensors, one head chunk and two block buffers (the token-row tables, at most
  // 2 x B x T x d_model floats, come with the batch).
  static int64_t WorkingBytes(const ParamLayout& layout);

 private:
  ZoOptimizer(Transformer* model, ZoConfig config);
  std::optional<uint64_t> next_seed_;
  BlockStream ArenaBlocks();
  // Applies `record`'s update to tensor `tensor_id` whose values are at `theta` (momentum and
  // Adam read their state from this optimizer's arena-layout buffers).
  void UpdateTensorAt(const ZoStepRecord& record, int tensor_id, float* theta);
  // Over elements [first, first + n) of the tensor (theta points at element `first`):
  // plus = theta + eps z and, when minus is not null, minus = theta - eps z.
  void PerturbAt(int tensor_id, const NoiseKey& key, int64_t first, int64_t n, const float* theta,
                 float* plus, float* minus) const;
  // out = theta - eps z over the same range, bitwise equal to PerturbAt's minus.
  void PerturbMinusAt(int tensor_id, const NoiseKey& key, int64_t first, int64_t n,
                      const float* theta, float* out) const;
  // Perturbs the rows of the token embedding that `tokens_` uses into token_plus_/token_minus_.
  void PerturbTokenRows(const NoiseKey& key);
  // Applies the pending update (and clears it) unless none is pending.
  void FinishPendingUpdate();

  Transformer* model_;
  ZoConfig config_;
  std::vector<float> thresholds_;
  AlignedBuffer m_, v_;
  int64_t adam_updates_ = 0;
  std::optional<ZoStepRecord> pending_;
  // Small resident tensors (norms, position embeddings) are perturbed into these
  // arena-layout buffers (only their pages are ever committed). The token embedding and the
  // head are never copied: only the rows a batch uses are perturbed (token_plus_/minus_,
  // indexed by local_tokens_), and the head chunk by chunk as the loss needs it (head_chunk_).
  LazyBuffer resident_plus_, resident_minus_;
  std::vector<int> resident_ids_;
  std::vector<int32_t> used_tokens_, local_tokens_;
  AlignedBuffer token_plus_, token_minus_, head_chunk_;
  AlignedBuffer block_plus_, block_minus_;
};

}  // namespace strata::zo

#endif  // STRATA_RUNTIME_ZO_ZO_OPTIMIZER_H_
