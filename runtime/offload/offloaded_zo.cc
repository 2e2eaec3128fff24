// See offloaded_zo.h.
#include "runtime/offload/offloaded_zo.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"
#include "runtime/cuda/cuda_runtime.h"
#include "runtime/model/bf16_weights.h"
#include "runtime/offload/gpu/gpu_block_executor.h"

namespace strata {

absl::StatusOr<std::unique_ptr<OffloadedZo>> OffloadedZo::Create(Transformer* model,
                                                                 zo::ZoConfig config,
                                                                 Options options) {
  if (config.variant != zo::ZoVariant::kSgd && config.variant != zo::ZoVariant::kSign) {
    return absl::InvalidArgumentError("offloaded ZO supports the sgd and sign variants");
  }
  if (options.tier == Tier::kNvme && options.nvme_paths.empty()) {
    return absl::InvalidArgumentError("offload to the NVMe tier needs nvme_paths");
  }
  if (options.prefetch_blocks < 1) return absl::InvalidArgumentError("prefetch_blocks >= 1");
  if (options.adapters != nullptr && (config.sparse_quantile > 0 || options.gpu_device >= 0)) {
    return absl::InvalidArgumentError(
        "offloaded ZO over adapters runs on the CPU without Sparse-MeZO masks: no gpu_device or "
        "sparse_quantile");
  }
  std::unique_ptr<OffloadedZo> o(new OffloadedZo(model, std::move(options)));
  const ParamLayout& layout = model->layout();
  const int L = layout.config().n_layer;
  float* arena = model->params().data();
  if (config.sparse_quantile > 0 &&
      (o->options_.init_seed.has_value() || o->options_.load_tensor != nullptr)) {
    return absl::InvalidArgumentError(
        "Sparse-MeZO thresholds need the weights in memory; not with streamed construction");
  }
  // Budget: choose the read-ahead that fits.
  const bool bf16 = o->options_.bf16_storage;
  const int64_t block_bytes = layout.BlockElements() * static_cast<int64_t>(bf16 ? 2 : 4);
  const int64_t padded_block = TensorStore::Padded(block_bytes);
  const int64_t block_f32_bytes = layout.BlockElements() * static_cast<int64_t>(sizeof(float));
  const int64_t resident_bytes =
      (layout.NumElements() - (layout.BlockEnd(L - 1) - layout.BlockBegin(0))) *
      static_cast<int64_t>(sizeof(float));
  int slots = std::min(L, o->options_.prefetch_blocks + 1);
  // The resident tensors once (the large ones are perturbed on the fly), the optimizer's
  // perturbation buffers, the slots, and the fp32 copy of a bf16 block.
  // With adapters, the perturbed adapter copies instead of perturbed blocks.
  TrainableAdapters* const adapters = o->options_.adapters;
  const int64_t perturbation = adapters != nullptr ? ZoAdapters::WorkingBytes(*adapters)
                                                   : zo::ZoOptimizer::WorkingBytes(layout);
  const int64_t fixed = resident_bytes + perturbation + (bf16 ? block_f32_bytes : 0);
  auto working_set = [&](int n) { return fixed + n * padded_block; };
  const int64_t budget = o->options_.memory_budget_bytes;
  const bool cpu = o->options_.tier == Tier::kCpu;
  while (!cpu && budget > 0 && slots > 1 && working_set(slots) > budget) --slots;
  if (!cpu && budget > 0 && working_set(slots) > budget) {
    return absl::ResourceExhaustedError(
        absl::StrCat("memory budget ", budget, " bytes cannot hold the resident tensors (",
                     resident_bytes, " bytes), the perturbation buffers (", fixed - resident_bytes,
                     " bytes) and one block slot (", padded_block, " bytes): at least ",
                     working_set(1), " bytes are needed"));
  }
  if (cpu) {  // Every block has a slot in the host tier; compute reads it in place.
    if (budget > 0 && working_set(0) > budget) {
      return absl::ResourceExhaustedError(
          absl::StrCat("memory budget ", budget, " bytes cannot hold the resident tensors and ",
                       "perturbation buffers: at least ", working_set(0), " bytes are needed"));
    }
    slots = L;
  }
  o->working_set_bytes_ = working_set(cpu ? 0 : slots);
  // Streamed construction: each tensor is produced in place (resident ones in the arena, block
  // ones in the staging slot) from the seed or the loader; otherwise the arena's blocks move.
  const Options& opts = o->options_;
  const bool streamed = opts.init_seed.has_value() || opts.load_tensor != nullptr;
  auto produce = [&](const TensorInfo& t, float* out) -> absl::Status {
    if (opts.init_seed.has_value()) {
      model->InitializeTensor(*opts.init_seed, t.id, out);
      return absl::OkStatus();
    }
    return opts.load_tensor(t.id, out);
  };
  if (streamed) {
    for (const TensorInfo& t : layout.tensors()) {
      if (t.block < 0) STRATA_RETURN_IF_ERROR(produce(t, arena + t.offset));
    }
  }
  if (adapters != nullptr) {
    STRATA_ASSIGN_OR_RETURN(o->adapter_zo_,
                            ZoAdapters::Create(model, adapters, config, o->Blocks()));
  } else {
    STRATA_ASSIGN_OR_RETURN(o->zo_, zo::ZoOptimizer::Create(model, config));
  }
  if (!cpu) {
    STRATA_ASSIGN_OR_RETURN(o->engine_, CreateIoEngine(o->options_.io));
    TensorStore::Options store_options;
    store_options.paths = o->options_.nvme_paths;
    store_options.name = "zo-blocks";
    store_options.engine = o->engine_.get();
    STRATA_ASSIGN_OR_RETURN(
        o->store_, TensorStore::Create(store_options, std::vector<int64_t>(L, block_bytes)));
  }
  PinnedSlab::Options slab_options;
  slab_options.slot_bytes = padded_block;
  slab_options.slots = slots;
  slab_options.lock = o->options_.lock_slab;
  slab_options.engine = o->engine_.get();
  STRATA_ASSIGN_OR_RETURN(o->slab_, PinnedSlab::Create(slab_options));
  if (bf16) o->block_work_.Resize(layout.BlockElements());
  // Move (or initialize) the blocks to NVMe through slot 0, or into their host-tier slots (via
  // the fp32 buffer for bf16).
  for (int l = 0; l < L; ++l) {
    char* slot = o->slab_->slot(cpu ? l : 0);
    float* staging = bf16 ? o->block_work_.data() : reinterpret_cast<float*>(slot);
    if (streamed) {
      for (int s = 0; s < layout.SlotsPerBlock(); ++s) {
        const TensorInfo& t = layout.BlockTensor(l, s);
        STRATA_RETURN_IF_ERROR(produce(t, staging + (t.offset - layout.BlockBegin(l))));
      }
    } else {
      std::memcpy(staging, arena + layout.BlockBegin(l), block_f32_bytes);
    }
    o->StoreBack(staging, slot);
    if (cpu) continue;
    STRATA_RETURN_IF_ERROR(o->store_->SubmitWrite(l, slot, 0));
    std::vector<IoCompletion> done;
    STRATA_RETURN_IF_ERROR(o->store_->Reap(1, &done));
    STRATA_RETURN_IF_ERROR(done.at(0).status);
    o->bytes_written_ += o->store_->padded_bytes(l);
  }
  if (o->options_.gpu_device >= 0) {
    GpuBlockExecutorOptions gpu_options;
    gpu_options.device = o->options_.gpu_device;
    gpu_options.one_sided = config.one_sided;
    gpu_options.eps = config.eps;
    gpu_options.thresholds = o->zo_->thresholds();
    STRATA_ASSIGN_OR_RETURN(o->gpu_, CreateGpuBlockExecutor(layout, std::move(gpu_options)));
    // Page-lock the slots (page-aligned) so the device copies are asynchronous DMA. With bf16
    // storage the device reads the widened copy in ordinary memory (staged, synchronous copies).
    STRATA_RETURN_IF_ERROR(CudaHostRegister(
        o->slab_->slot(0), static_cast<int64_t>(o->slab_->slots()) * padded_block));
    o->registered_.push_back(o->slab_->slot(0));
  }
  o->options_.load_tensor = nullptr;  // Construction only; may capture a short-lived reader.
  if (o->options_.release_arena_blocks && !streamed) {
    o->ReleaseArenaBlocks();
  }
  return o;
}

absl::Status OffloadedZo::StreamBlocks(const zo::ZoOptimizer::BlockVisitor& fn) {
  const int L = model_->layout().config().n_layer;
  if (options_.tier == Tier::kCpu) {
    for (int l = 0; l < L; ++l) {
      float* weights = Fp32Weights(slab_->slot(l));
      STRATA_ASSIGN_OR_RETURN(bool dirty, fn(l, weights));
      if (dirty) StoreBack(weights, slab_->slot(l));
    }
    return absl::OkStatus();
  }
  const int slots = slab_->slots();
  enum class SlotState { kFree, kReading, kReady, kWriting };
  std::vector<SlotState> state(slots, SlotState::kFree);
  std::vector<int> slot_block(slots, -1);
  int next_read = 0;
  absl::Status failure;
  auto reap = [&]() -> absl::Status {
    std::vector<IoCompletion> done;
    STRATA_RETURN_IF_ERROR(store_->Reap(1, &done));
    for (const IoCompletion& c : done) {
      const int slot = static_cast<int>(c.tag / 2);
      if (!c.status.ok() && failure.ok()) failure = c.status;
      state[slot] = c.tag % 2 == 0 ? SlotState::kReady : SlotState::kFree;
    }
    return failure;
  };
  auto issue_reads = [&]() -> absl::Status {
    for (int s = 0; s < slots && next_read < L; ++s) {
      if (state[s] != SlotState::kFree) continue;
      STRATA_RETURN_IF_ERROR(store_->SubmitRead(next_read, slab_->slot(s), 2 * s));
      state[s] = SlotState::kReading;
      slot_block[s] = next_read++;
      bytes_read_ += store_->padded_bytes(slot_block[s]);
    }
    return absl::OkStatus();
  };
  for (int l = 0; l < L; ++l) {
    STRATA_RETURN_IF_ERROR(issue_reads());
    while (next_read <= l) {  // Every slot is being written back: wait for one.
      STRATA_RETURN_IF_ERROR(reap());
      STRATA_RETURN_IF_ERROR(issue_reads());
    }
    int slot = -1;
    for (int s = 0; s < slots; ++s) {
      if (slot_block[s] == l) slot = s;
    }
    while (state[slot] != SlotState::kReady) STRATA_RETURN_IF_ERROR(reap());
    float* weights = Fp32Weights(slab_->slot(slot));
    STRATA_ASSIGN_OR_RETURN(bool dirty, fn(l, weights));
    if (dirty) {
      StoreBack(weights, slab_->slot(slot));
      STRATA_RETURN_IF_ERROR(store_->SubmitWrite(l, slab_->slot(slot), 2 * slot + 1));
      state[slot] = SlotState::kWriting;
      bytes_written_ += store_->padded_bytes(l);
    } else {
      state[slot] = SlotState::kFree;
    }
    slot_block[slot] = -1;
  }
  while (true) {  // Drain the write-backs.
    bool writing = false;
    for (SlotState s : state) writing = writing || s == SlotState::kWriting;
    if (!writing) break;
    STRATA_RETURN_IF_ERROR(reap());
  }
  return failure;
}

zo::ZoOptimizer::BlockStream OffloadedZo::Blocks() {
  return [this](const zo::ZoOptimizer::BlockVisitor& fn) { return StreamBlocks(fn); };
}

absl::StatusOr<zo::ZoStepRecord> OffloadedZo::Step(absl::Span<const int32_t> tokens,
                                                   absl::Span<const int32_t> targets, int B, int T,
                                                   int64_t step, double lr) {
  if (adapter_zo_ != nullptr) return adapter_zo_->Step(tokens, targets, B, T, step, lr);
  return zo_->Step(tokens, targets, B, T, step, lr, Blocks(), gpu_.get());
}

OffloadedZo::~OffloadedZo() {
  gpu_.reset();  // Finishes the device's work on the slots first.
  for (void* data : registered_) CudaHostUnregister(data).IgnoreError();
}

absl::Status OffloadedZo::Flush() {
  return adapter_zo_ != nullptr ? absl::OkStatus() : zo_->Flush(Blocks());
}

void OffloadedZo::ReleaseArenaBlocks() {
  const ParamLayout& layout = model_->layout();
  float* arena = model_->params().data();
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(arena + layout.BlockBegin(0));
  const uintptr_t end =
      reinterpret_cast<uintptr_t>(arena + layout.BlockEnd(layout.config().n_layer - 1));
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

absl::Status OffloadedZo::Replay(const zo::ZoStepRecord& record) {
  if (adapter_zo_ != nullptr) return adapter_zo_->Replay(record);
  return zo_->Replay(record, Blocks());
}

absl::Status OffloadedZo::IoOnlyPass(bool write_back) {
  return StreamBlocks([write_back](int, float*) -> absl::StatusOr<bool> { return write_back; });
}

absl::StatusOr<float> OffloadedZo::Loss(absl::Span<const int32_t> tokens,
                                        absl::Span<const int32_t> targets, int B, int T) {
  STRATA_RETURN_IF_ERROR(Flush());
  const float* arena = model_->params().data();
  STRATA_RETURN_IF_ERROR(model_->BeginForward(arena, tokens, B, T, 0));
  STRATA_RETURN_IF_ERROR(StreamBlocks([&](int l, float* block) -> absl::StatusOr<bool> {
    model_->BlockForward(l, block, 0);
    return false;
  }));
  return model_->EndForward(arena, targets, 0);
}

absl::StatusOr<const float*> OffloadedZo::ReadBlock(int layer) {
  if (zo_ != nullptr && zo_->has_pending()) {
    return absl::FailedPreconditionError("ReadBlock with a pending update: Flush first");
  }
  if (layer < 0 || layer >= model_->layout().config().n_layer) {
    return absl::OutOfRangeError(absl::StrCat("no block ", layer));
  }
  if (options_.tier == Tier::kCpu) return Fp32Weights(slab_->slot(layer));
  STRATA_RETURN_IF_ERROR(store_->SubmitRead(layer, slab_->slot(0), 0));
  std::vector<IoCompletion> done;
  while (done.empty()) STRATA_RETURN_IF_ERROR(store_->Reap(1, &done));
  STRATA_RETURN_IF_ERROR(done[0].status);
  bytes_read_ += store_->padded_bytes(layer);
  return Fp32Weights(slab_->slot(0));
}

float* OffloadedZo::Fp32Weights(char* slot) {
  if (!options_.bf16_storage) return reinterpret_cast<float*>(slot);
  Bf16ToF32(block_work_.data(), reinterpret_cast<const uint16_t*>(slot),
            model_->layout().BlockElements());
  return block_work_.data();
}

void OffloadedZo::StoreBack(const float* weights, char* slot) {
  if (!options_.bf16_storage) return;  // The weights were updated in the slot itself.
  F32ToBf16(reinterpret_cast<uint16_t*>(slot), weights, model_->layout().BlockElements());
}

absl::Status OffloadedZo::Materialize() {
  STRATA_RETURN_IF_ERROR(Flush());
  const ParamLayout& layout = model_->layout();
  float* arena = model_->params().data();
  return StreamBlocks([&](int l, float* block) -> absl::StatusOr<bool> {
    std::memcpy(arena + layout.BlockBegin(l), block, layout.BlockElements() * sizeof(float));
    return false;
  });
}

}  // namespace strata
