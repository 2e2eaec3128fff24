// Offloaded zeroth-order training (ZO2's design) on the NVMe tier: the transformer blocks live in
// a TensorStore on NVMe and stream through a few pinned slab slots; the embeddings, final norm
// and head stay resident (held once: ZoOptimizer perturbs the token rows a batch uses and the
// head chunk by chunk, never copying them). For each perturbation pass every block is read once,
// receives the deferred update of the previous step (the first pass of a step), is perturbed out
// of place into two block buffers, runs both perturbed forwards while it is resident, and — if
// it changed — is written back; the reads of the next blocks are in flight meanwhile
// (prefetch). The host-memory tier (Tier::kCpu) keeps every block in one pinned slab and runs
// the same pass without I/O.
//
// The step is ZoOptimizer's own, fed the blocks through a BlockStream, so the scalars, the step
// log and the weights are bitwise identical to in-memory ZO for the same seeds. Stateless variants
// only (sgd, sign): momentum/Adam state would need its own offloading.
//
// With adapters (Options::adapters: LoRA or a prefix) the base is frozen: ZoAdapters takes the
// steps over the in-memory adapters, each pass reads every block once and writes none back (about
// half the bytes of full offloaded ZO), and no block perturbation buffers are needed.
#ifndef STRATA_RUNTIME_OFFLOAD_OFFLOADED_ZO_H_
#define STRATA_RUNTIME_OFFLOAD_OFFLOADED_ZO_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/model/transformer.h"
#include "runtime/peft/trainable_adapters.h"
#include "runtime/peft/zo_adapters.h"
#include "runtime/zo/zo_engine.h"
#include "runtime/zo/zo_optimizer.h"
#include "storage/io/io_engine.h"
#include "storage/pinned_slab.h"
#include "storage/tensor_store.h"

namespace strata {

class OffloadedZo : public zo::ZoEngine {
 public:
  // Where the blocks live between uses. kNvme: block files under nvme_paths, streamed through
  // a few pinned slots. kCpu: one pinned host slab holding every block (not counted in the
  // memory budget; compute reads a block straight from it — in CUDA builds it is the source of
  // the host-to-device copies).
  enum class Tier { kNvme, kCpu };

  struct Options {
    Tier tier = Tier::kNvme;
    std::vector<std::string> nvme_paths;  // Block files go here (kNvme).
    int prefetch_blocks = 2;              // Blocks read ahead of the one computing.
    // Release the model arena's block pages after moving the blocks to NVMe (resident memory
    // then holds only the resident tensors and the working set).
    bool release_arena_blocks = true;
    IoEngineOptions io;
    bool lock_slab = false;  // mlock the slab (needs RLIMIT_MEMLOCK).
    // Bound on the working set (0: none): the resident tensors (once: the token embedding and
    // head are perturbed on the fly, ZoOptimizer::WorkingBytes) + the perturbation buffers
    // (two blocks, one head chunk, the small resident tensors twice) + the slots. The read-ahead
    // shrinks to fit; a budget that cannot hold that with one slot is an error. Activations and
    // the batch's perturbed token rows come on top (a fixed overhead for a given batch).
    int64_t memory_budget_bytes = 0;
    // When set, the model is initialized here with this seed (Transformer::InitializeTensor)
    // straight into the slots and the block files, so the block weights never occupy RAM: models
    // far larger than memory. When unset, the blocks are moved out of the model's arena.
    std::optional<uint64_t> init_seed;
    // When set (and init_seed is not), every tensor is read through this (e.g.
    // HfWeightsReader::Read, resuming from a checkpoint) straight into place, the same way:
    // the block weights never occupy RAM.
    std::function<absl::Status(int tensor_id, float* out)> load_tensor;
    // Store blocks as bf16 on NVMe (half the bytes); compute, update and perturbation stay fp32
    // on a widened copy, rounded to nearest even when a block is written back. Updates smaller
    // than half a bf16 ulp of a weight round away (see docs/runtime.md for the measured effect).
    bool bf16_storage = false;
    // Run each block's update, perturbation and both forwards on this CUDA device (the GPU
    // stage, gpu/gpu_block_executor.h): the slots are page-locked for the device's DMA and the
    // blocks are copied to the device on their own stream. -1: compute on the CPU. Needs a
    // build with --config=cuda and the sgd or sign variant.
    int gpu_device = -1;
    // ZO over adapters and the read-only base: these adapters (not owned) are what the steps train;
    // Sparse-MeZO and the GPU stage are refused.
    TrainableAdapters* adapters = nullptr;
  };

  // Moves the model's blocks to NVMe. `model` must outlive this object.
  static absl::StatusOr<std::unique_ptr<OffloadedZo>> Create(Transformer* model,
                                                             zo::ZoConfig config, Options options);
  ~OffloadedZo();

  absl::StatusOr<zo::ZoStepRecord> Step(absl::Span<const int32_t> tokens,
                                        absl::Span<const int32_t> targets, int B, int T,
                                        int64_t step, double lr) override;
  // Applies the pending update to the resident tensors and every block on NVMe.
  absl::Status Flush() override;
  // Flush, then copy every block back into the model's arena.
  absl::Status Materialize();
  // Reads block `layer` from NVMe into the working set and returns its fp32 weights, valid until
  // the next call or pass (HfSaveOptions::block_source: checkpoints within the budget). No
  // update may be pending (Flush first).
  absl::StatusOr<const float*> ReadBlock(int layer);
  // The loss at the current weights (pending update applied first), streaming the blocks through
  // the working set read-only: evaluation within the memory budget, one read pass per call.
  // Bitwise equal to Transformer::Loss on the materialized weights.
  absl::StatusOr<float> Loss(absl::Span<const int32_t> tokens, absl::Span<const int32_t> targets,
                             int B, int T) override;

  // Applies a logged step (resume); no update may be pending.
  absl::Status Replay(const zo::ZoStepRecord& record) override;
  // Drops the model arena's block pages again after Materialize (they are not used while the
  // blocks live on NVMe).
  void ReleaseArenaBlocks();
  // The in-memory optimizer whose per-tensor arithmetic and Sparse-MeZO thresholds this uses
  // (none with adapters).
  zo::ZoOptimizer* arithmetic() override { return zo_.get(); }
  // Blocks read from their tier one at a time (ReadBlock): exports stay within the budget.
  std::function<absl::StatusOr<const float*>(int layer)> block_source() override {
    return [this](int layer) { return ReadBlock(layer); };
  }

  // One pass that reads every block and (with write_back) writes it back unchanged: the I/O a
  // step costs without compute (for benchmarks; ZO over adapters only reads).
  absl::Status IoOnlyPass(bool write_back = true);

  // The working set as accounted against memory_budget_bytes.
  int64_t working_set_bytes() const { return working_set_bytes_; }
  int slots() const { return slab_->slots(); }

  int64_t bytes_read() const override { return bytes_read_; }
  int64_t bytes_written() const override { return bytes_written_; }
  const char* io_engine_name() const { return engine_->name(); }

 private:
  OffloadedZo(Transformer* model, Options options) : model_(model), options_(std::move(options)) {}
  // Streams blocks 0..L-1 through the slots in order; fn(l, weights) returns whether it changed
  // the block (then it is written back).
  absl::Status StreamBlocks(const zo::ZoOptimizer::BlockVisitor& fn);
  zo::ZoOptimizer::BlockStream Blocks();
  // The fp32 weights of the block in `slot`: the slot itself, or for bf16 storage its widened
  // copy in block_work_. StoreBack rounds changed weights back into a bf16 slot.
  float* Fp32Weights(char* slot);
  void StoreBack(const float* weights, char* slot);

  Transformer* model_;
  Options options_;
  std::unique_ptr<zo::ZoOptimizer> zo_;     // Full ZO.
  std::unique_ptr<ZoAdapters> adapter_zo_;  // Or ZO over adapters and the read-only blocks.
  std::unique_ptr<IoEngine> engine_;
  std::unique_ptr<TensorStore> store_;
  std::unique_ptr<PinnedSlab> slab_;
  AlignedBuffer block_work_;                // fp32 copy of the current block when storing bf16.
  std::unique_ptr<zo::BlockExecutor> gpu_;  // The GPU stage, when gpu_device >= 0.
  std::vector<void*> registered_;           // Host memory page-locked for the GPU.
  int64_t bytes_read_ = 0, bytes_written_ = 0;
  int64_t working_set_bytes_ = 0;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_OFFLOAD_OFFLOADED_ZO_H_
