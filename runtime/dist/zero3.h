// ZeRO stage 3 on the CPU: parameters, gradients and AdamW state all partitioned across ranks.
//
// The arena is cut into units — each transformer block, the embeddings (the arena before the
// first block) and the final norm/head (after the last block). Rank r of N holds chunk r of
// every unit: elements [r c, (r + 1) c) with c = ceil(unit size / N), plus its gradient and its
// AdamW m and v. Nothing else persists between steps, so model state per rank is
// 16 Ψ/N bytes (fp32 parameter, gradient, m, v: the fp32 form of ZeRO's (2 + 2 + 12) Ψ/N).
//
// As the model's Transformer::WeightSource, a training pass
// - all-gathers the embeddings and final norm/head at Begin (held for the pass),
// - all-gathers each block just before its forward and again before its backward into one of
//   two buffers, the next block's gather running asynchronously while the current block
//   computes (the forward's last block is reused by the backward, and the backward's first
//   blocks come from the forward's buffers when still held),
// - reduces each block's gradient as soon as its backward is done (asynchronously, two gradient
//   buffers alternating) and keeps only this rank's chunk, and the non-block gradient at End.
// Step then averages, clips by the global norm (partials summed in rank order) and runs AdamW on
// this rank's chunks only. Working memory: two gathered blocks, two block gradients and the
// gathered non-block tensors with their gradient.
//
// Offload (ZeRO-Infinity): with `nvme_paths`, the rank's weight shard (`offload_params`) and/or
// its AdamW state (`offload_state`) live in files, in sub-groups of at most `subgroup_elements`
// per unit; only the gradient shard stays in memory. A gather first reads the unit's weight
// sub-groups into a staging buffer — on the communicator's thread, so the read of block l + 1
// overlaps block l's compute like its gather does. The AdamW update then overlaps the next
// step's compute: Step only averages, computes the global norm and clips (those need every
// gradient), and each unit's update is deferred to its next gather, where it streams the unit's
// weights and state through three slot sets (read g + 1 / update g / write g - 1) on the
// communicator's thread and hands the updated weights straight to the all-gather — so the
// update of block l + 1 runs while the model computes block l. Exact: the same gradients, clip
// factor, learning rate and step count as an update inside Step; bitwise the same as in memory.
// (In memory, the update is compute-bound on the cores the model uses, so Step runs it.)
//
// Reduction order: a block's gradient is summed by an all-reduce over that block's buffer, so
// with two ranks the sums equal every other stage's bit for bit (a + b == b + a); with more ranks
// the ring may add them in another order (differences of float rounding). The global norm is
// summed over other partials than stages 0-2, so clipped steps agree to rounding.
#ifndef STRATA_RUNTIME_DIST_ZERO3_H_
#define STRATA_RUNTIME_DIST_ZERO3_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/base/aligned_buffer.h"
#include "runtime/base/lazy_buffer.h"
#include "runtime/dist/communicator.h"
#include "runtime/model/param_layout.h"
#include "runtime/model/transformer.h"
#include "runtime/optim/adamw.h"
#include "storage/io/io_engine.h"
#include "storage/pinned_slab.h"
#include "storage/tensor_store.h"

namespace strata {

class Zero3 : public Transformer::WeightSource {
 public:
  struct Options {
    AdamWConfig adam;
    float grad_clip = 0;                  // Global gradient-norm clip; 0 disables.
    std::vector<std::string> nvme_paths;  // Files of the offloaded parts.
    bool offload_params = false;          // The weight shard on NVMe.
    bool offload_state = false;           // m and v on NVMe.
    int64_t subgroup_elements = int64_t{4} << 20;
    IoEngineOptions io;
    // Forward and backward read a bf16 copy of the weights (round to nearest even) that AdamW
    // writes in the same pass as the fp32 master: gathers move half the bytes and widen them to
    // fp32 for the kernels, and with offloaded weights the copy (2 bytes a parameter of the
    // shard) stays in memory, so gathers read no NVMe. Checkpoints and GatherWeights hold the
    // fp32 masters.
    bool bf16_compute = false;
  };

  // ZeRO stage 2 with the same machinery: the weights stay whole in `weights` (the model's
  // arena, not owned) on every rank and are read in place; gradients and AdamW state are
  // partitioned as at stage 3 (each block's gradient reduced as its backward ends), and after
  // the update each unit's new chunks are all-gathered back into `weights`. Model state
  // 4 Ψ + 12 Ψ/N. `offload_params` and `bf16_compute` do not apply.
  static absl::StatusOr<std::unique_ptr<Zero3>> CreateReplicated(const ParamLayout& layout,
                                                                 Communicator* comm,
                                                                 Options options,
                                                                 absl::Span<float> weights);

  // Writes the initial values of arena elements [begin, end) — whole tensors — to `out`.
  using Fill = std::function<absl::Status(int64_t begin, int64_t end, float* out)>;
  // Takes this rank's chunks of the initial weights, produced one unit at a time by `fill` (the
  // same values on every rank), so the whole model is never held. `layout` and `comm` must
  // outlive the object; a null `comm` is one rank.
  static absl::StatusOr<std::unique_ptr<Zero3>> Create(const ParamLayout& layout,
                                                       Communicator* comm, Options options,
                                                       const Fill& fill);
  // The same from an arena holding the whole model (the caller may free it after:
  // Transformer::ReleaseBlockWeights).
  static absl::StatusOr<std::unique_ptr<Zero3>> Create(const ParamLayout& layout,
                                                       Communicator* comm, Options options,
                                                       absl::Span<const float> initial);
  // Elements of each rank's shard (sum over units of ceil(unit size / ranks)).
  static int64_t ShardElements(const ParamLayout& layout, int ranks);
  ~Zero3() override;  // Waits for collectives still writing into its buffers.

  // Transformer::WeightSource.
  absl::Status Begin(const float** resident, float** resident_grads) override;
  absl::StatusOr<const float*> BlockWeights(int layer, bool backward) override;
  absl::StatusOr<float*> BlockGrads(int layer) override;
  absl::Status BlockGradsDone(int layer) override;
  absl::Status End() override;

  // AdamW on this rank's chunks after a ForwardBackward pass with this source; returns the
  // global gradient norm before clipping.
  absl::StatusOr<double> Step(float lr);
  // Loss-only forward of `model` over gathered blocks (evaluation; every rank takes part).
  absl::StatusOr<float> Loss(Transformer& model, absl::Span<const int32_t> tokens,
                             absl::Span<const int32_t> targets, int B, int T);
  // The full weights into `arena` (every rank takes part): export at the end of training.
  absl::Status GatherWeights(absl::Span<float> arena);

  // This rank's shard to and from a checkpoint file: tensors params.<g>, m.<g>, v.<g> for each
  // sub-group g (offloaded parts streamed one sub-group at a time), crash-safely written. It
  // loads into a Zero3 of the same ranks and subgroup_elements, in memory or offloaded; a file
  // of another world size or sub-group size is refused, naming the tensor.
  absl::Status SaveShard(const std::string& path);
  absl::Status LoadShard(const std::string& path);
  int64_t step() const { return step_; }
  void set_step(int64_t step) { step_ = step; }

  // Bytes that persist between steps (parameters, gradients, m, v of the shard), in memory and
  // on NVMe.
  int64_t ModelStateBytes() const {
    return (arena_ != nullptr ? 4 * layout_.NumElements() + 12 * shard_elements_
                              : 16 * shard_elements_) +
           2 * static_cast<int64_t>(compute_.size());
  }
  int64_t ResidentStateBytes() const;
  int64_t OffloadedStateBytes() const { return ModelStateBytes() - ResidentStateBytes(); }
  int64_t nvme_bytes_read() const { return nvme_read_; }
  int64_t nvme_bytes_written() const { return nvme_written_; }
  // Bytes of the per-pass working set (gathered blocks, block gradients, non-block tensors
  // and their gradient).
  int64_t WorkingBytes() const;

 private:
  struct Unit {
    int64_t begin = 0, size = 0;       // Arena range.
    int64_t chunk = 0;                 // Elements per rank.
    int64_t shard = 0;                 // Offset of this rank's chunk in the shard.
    int first_group = 0, groups = 0;   // Its sub-groups.
    int64_t chunk16 = 0, shard16 = 0;  // The bf16 copy: chunk rounded up to even, its offset.
  };
  struct Subgroup {
    int unit = 0;
    int64_t offset = 0, count = 0;  // Within the rank's chunk of the unit.
  };
  Zero3(const ParamLayout& layout, Communicator* comm, Options options, bool replicated);
  static std::vector<Unit> Units(const ParamLayout& layout, int ranks);
  static absl::Status CheckOptions(const Options& options);
  int ranks() const { return comm_ != nullptr ? comm_->size() : 1; }
  int rank() const { return comm_ != nullptr ? comm_->rank() : 0; }
  // This rank's arena range of `unit`.
  int64_t OwnBegin(const Unit& u) const { return u.begin + std::min(u.size, rank() * u.chunk); }
  int64_t OwnEnd(const Unit& u) const { return u.begin + std::min(u.size, (rank() + 1) * u.chunk); }
  // All of `unit` (ranks * chunk floats) into dst; asynchronous where a handle is given.
  // `master`: the fp32 weights even when forward/backward use the bf16 copy.
  absl::Status Gather(const Unit& unit, float* dst, Communicator::Handle* handle,
                      bool master = false);
  // This rank's bf16 copy of `unit` (its chunk), or null without bf16_compute.
  uint16_t* ComputeCopy(const Unit& unit) {
    return compute_.empty() ? nullptr : compute_.data() + unit.shard16;
  }
  // Sums buf (ranks * chunk floats) over ranks and keeps this rank's chunk of the gradient.
  absl::Status Reduce(const Unit& unit, float* buf, Communicator::Handle* handle);
  absl::Status GatherResident();
  absl::Status InitOffload();
  // The deferred update of an offloaded unit; with `staged`, its updated weight chunk is copied
  // there too. `parallel`: AdamW may use the compute pool (only on the calling thread).
  absl::Status UpdateUnit(const Unit& unit, float* staged, bool parallel);
  // Applies every deferred update (before checkpoints).
  absl::Status FlushUpdates();
  // The rank's chunk of `unit`'s weights, read from NVMe into `out` (chunk floats, padded 0).
  absl::Status LoadChunk(const Unit& unit, float* out);
  bool offloaded() const { return store_ != nullptr; }
  // This rank's chunk of `unit`'s weights in memory (in the arena at stage 2).
  float* OwnParams(const Unit& u) {
    return arena_ != nullptr ? arena_ + OwnBegin(u) : params_.data() + u.shard;
  }
  // Stage 2: every unit's updated chunks all-gathered into the arena.
  absl::Status AllGatherIntoArena();
  int params_extent(int g) const { return g; }
  int state_extent(int g) const { return static_cast<int>(groups_.size()) + g; }
  absl::Status WaitAll();
  absl::Status IssueBlockGather(int buffer, int layer);

  const ParamLayout& layout_;
  Communicator* comm_;
  const Options options_;
  std::vector<Unit> units_;  // Blocks 0..L-1, then the embeddings, then the final norm/head.
  std::vector<Subgroup> groups_;
  int64_t shard_elements_ = 0;
  AlignedBuffer params_, grads_, m_, v_;  // This rank's shard (params, m, v empty if offloaded).
  float* arena_ = nullptr;                // Stage 2: the whole weights, every rank.
  std::vector<uint16_t> compute_;         // The bf16 copy of the shard (bf16_compute).
  AlignedBuffer packed_;                  // Gathered bf16 copies before widening.
  std::unique_ptr<IoEngine> engine_;
  std::unique_ptr<TensorStore> store_;
  // Three slot sets of (weights, state) for Step and checkpoints; one staging buffer for gathers.
  std::unique_ptr<PinnedSlab> slab_, staging_;
  std::atomic<int64_t> nvme_read_{0}, nvme_written_{0};  // Also counted on the comm thread.
  // Offloaded units whose AdamW update is still to run (at their next gather), and its lr.
  std::vector<char> pending_;
  float pending_lr_ = 0;
  int64_t step_ = 0;
  // Arena-layout buffers for the non-block tensors (their block region stays untouched).
  LazyBuffer resident_, resident_grads_;
  AlignedBuffer gathered_[2], block_grads_[2];
  int held_[2] = {-1, -1};        // Layer in gathered_[b], -1 none.
  int current_ = -1;              // Buffer last handed out.
  int grad_layer_[2] = {-1, -1};  // Layer whose gradient block_grads_[b] holds.
  int next_grad_ = 0;
  Communicator::Handle gather_done_[2], reduce_done_[2];
};

}  // namespace strata

#endif  // STRATA_RUNTIME_DIST_ZERO3_H_
