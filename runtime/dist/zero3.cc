// See zero3.h.
#include "runtime/dist/zero3.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"
#include "runtime/dist/subgroup_stream.h"
#include "storage/safetensors/safetensors.h"

namespace strata {

std::vector<Zero3::Unit> Zero3::Units(const ParamLayout& layout, int ranks) {
  const int L = layout.config().n_layer;
  std::vector<Unit> units;
  auto add = [&](int64_t begin, int64_t end) {
    Unit u;
    u.begin = begin;
    u.size = end - begin;
    u.chunk = (u.size + ranks - 1) / ranks;
    u.shard = units.empty() ? 0 : units.back().shard + units.back().chunk;
    units.push_back(u);
  };
  for (int l = 0; l < L; ++l) add(layout.BlockBegin(l), layout.BlockEnd(l));
  add(0, layout.BlockBegin(0));
  add(layout.BlockEnd(L - 1), layout.NumElements());
  return units;
}

int64_t Zero3::ShardElements(const ParamLayout& layout, int ranks) {
  const std::vector<Unit> units = Units(layout, ranks);
  return units.back().shard + units.back().chunk;
}

absl::Status Zero3::CheckOptions(const Options& options) {
  if ((options.offload_params || options.offload_state) && options.nvme_paths.empty()) {
    return absl::InvalidArgumentError("offloading the shard needs nvme_paths");
  }
  if (options.subgroup_elements < 1024 || options.subgroup_elements % 1024 != 0) {
    return absl::InvalidArgumentError("subgroup_elements must be a positive multiple of 1024");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Zero3>> Zero3::Create(const ParamLayout& layout, Communicator* comm,
                                                     Options options, const Fill& fill) {
  STRATA_RETURN_IF_ERROR(CheckOptions(options));
  std::unique_ptr<Zero3> zero(new Zero3(layout, comm, options, /*replicated=*/false));
  int64_t largest = 0;
  for (const Unit& u : zero->units_) largest = std::max(largest, u.size);
  std::vector<float> unit(largest);
  if (options.offload_params || options.offload_state) {
    STRATA_RETURN_IF_ERROR(zero->InitOffload());
  }
  for (const Unit& u : zero->units_) {
    STRATA_RETURN_IF_ERROR(fill(u.begin, u.begin + u.size, unit.data()));
    const float* mine = unit.data() + (zero->OwnBegin(u) - u.begin);
    if (uint16_t* copy = zero->ComputeCopy(u); copy != nullptr) {
      for (int64_t j = 0; j < zero->OwnEnd(u) - zero->OwnBegin(u); ++j) {
        copy[j] = FloatToBf16(mine[j]);
      }
    }
    if (!options.offload_params) {
      std::memcpy(zero->params_.data() + u.shard, mine,
                  (zero->OwnEnd(u) - zero->OwnBegin(u)) * sizeof(float));
      continue;
    }
    for (int g = u.first_group; g < u.first_group + u.groups; ++g) {
      const Subgroup& sg = zero->groups_[g];
      std::memcpy(zero->slab_->slot(0), mine + sg.offset, sg.count * sizeof(float));
      STRATA_RETURN_IF_ERROR(
          WriteExtent(*zero->store_, zero->params_extent(g), zero->slab_->slot(0)));
    }
  }
  return zero;
}

absl::Status Zero3::InitOffload() {
  std::vector<int64_t> extents;
  for (const Subgroup& g : groups_) extents.push_back(4 * g.count);  // Weights.
  for (const Subgroup& g : groups_) extents.push_back(8 * g.count);  // m, then v.
  STRATA_ASSIGN_OR_RETURN(engine_, CreateIoEngine(options_.io));
  TensorStore::Options store_options;
  store_options.paths = options_.nvme_paths;
  store_options.name = "zero3-shard";
  store_options.rank = rank();
  store_options.engine = engine_.get();
  STRATA_ASSIGN_OR_RETURN(store_, TensorStore::Create(store_options, extents));
  PinnedSlab::Options slab_options;
  slab_options.slot_bytes = TensorStore::Padded(8 * options_.subgroup_elements);
  slab_options.slots = 6;  // Three sets of (weights, state).
  slab_options.lock = false;
  slab_options.engine = engine_.get();
  STRATA_ASSIGN_OR_RETURN(slab_, PinnedSlab::Create(slab_options));
  if (options_.offload_params) {
    int64_t largest_chunk = 0;
    for (const Unit& u : units_) largest_chunk = std::max(largest_chunk, u.chunk);
    slab_options.slot_bytes = TensorStore::Padded(4 * largest_chunk) + 4096;
    slab_options.slots = 1;
    STRATA_ASSIGN_OR_RETURN(staging_, PinnedSlab::Create(slab_options));
  }
  if (options_.offload_state) {  // Zero m and v.
    std::memset(slab_->slot(0), 0, slab_->slot_bytes());
    for (int g = 0; g < static_cast<int>(groups_.size()); ++g) {
      STRATA_RETURN_IF_ERROR(WriteExtent(*store_, state_extent(g), slab_->slot(0)));
    }
  }
  return absl::OkStatus();
}

absl::Status Zero3::LoadChunk(const Unit& u, float* out) {
  for (int g = u.first_group; g < u.first_group + u.groups; ++g) {
    nvme_read_ += store_->padded_bytes(params_extent(g));
    STRATA_RETURN_IF_ERROR(store_->SubmitRead(params_extent(g), out + groups_[g].offset, 0));
  }
  for (int left = u.groups; left > 0;) {
    std::vector<IoCompletion> done;
    STRATA_RETURN_IF_ERROR(store_->Reap(1, &done));
    for (const IoCompletion& c : done) STRATA_RETURN_IF_ERROR(c.status);
    left -= static_cast<int>(done.size());
  }
  // The chunk's tail past this rank's elements (and any read padding there) is zero.
  const int64_t own = OwnEnd(u) - OwnBegin(u);
  std::memset(out + own, 0, (u.chunk - own) * sizeof(float));
  return absl::OkStatus();
}

int64_t Zero3::ResidentStateBytes() const {
  const int64_t weights = arena_ != nullptr         ? 4 * layout_.NumElements()
                          : options_.offload_params ? 0
                                                    : 4 * shard_elements_;
  return weights + 4 * shard_elements_ + (options_.offload_state ? 0 : 8 * shard_elements_) +
         2 * static_cast<int64_t>(compute_.size());
}

absl::StatusOr<std::unique_ptr<Zero3>> Zero3::Create(const ParamLayout& layout, Communicator* comm,
                                                     Options options,
                                                     absl::Span<const float> initial) {
  if (static_cast<int64_t>(initial.size()) != layout.NumElements()) {
    return absl::InvalidArgumentError(absl::StrCat("initial weights have ", initial.size(),
                                                   " floats, the model ", layout.NumElements()));
  }
  return Create(layout, comm, options, [&](int64_t begin, int64_t end, float* out) {
    std::memcpy(out, initial.data() + begin, (end - begin) * sizeof(float));
    return absl::OkStatus();
  });
}

absl::StatusOr<std::unique_ptr<Zero3>> Zero3::CreateReplicated(const ParamLayout& layout,
                                                               Communicator* comm, Options options,
                                                               absl::Span<float> weights) {
  if (static_cast<int64_t>(weights.size()) != layout.NumElements()) {
    return absl::InvalidArgumentError("the weights must be the whole arena");
  }
  if (options.offload_params || options.bf16_compute) {
    return absl::InvalidArgumentError(
        "weight offload and the bf16 compute copy need partitioned weights (ZeRO stage 3)");
  }
  STRATA_RETURN_IF_ERROR(CheckOptions(options));
  std::unique_ptr<Zero3> zero(new Zero3(layout, comm, options, /*replicated=*/true));
  zero->arena_ = weights.data();
  if (options.offload_state) STRATA_RETURN_IF_ERROR(zero->InitOffload());
  return zero;
}

Zero3::Zero3(const ParamLayout& layout, Communicator* comm, Options options, bool replicated)
    : layout_(layout),
      comm_(comm),
      options_(options),
      units_(Units(layout, comm != nullptr ? comm->size() : 1)) {
  const int64_t shard = units_.back().shard + units_.back().chunk;
  shard_elements_ = shard;
  // Sub-groups: each unit's chunk of this rank in pieces of at most subgroup_elements.
  for (size_t i = 0; i < units_.size(); ++i) {
    Unit& u = units_[i];
    u.first_group = static_cast<int>(groups_.size());
    const int64_t own = OwnEnd(u) - OwnBegin(u);
    for (int64_t at = 0; at < own; at += options_.subgroup_elements) {
      groups_.push_back({static_cast<int>(i), at, std::min(options_.subgroup_elements, own - at)});
    }
    u.groups = static_cast<int>(groups_.size()) - u.first_group;
  }
  pending_.assign(units_.size(), 0);
  if (options_.bf16_compute) {
    int64_t at = 0, largest = 0;
    for (Unit& u : units_) {
      u.chunk16 = (u.chunk + 1) / 2 * 2;
      u.shard16 = at;
      at += u.chunk16;
      largest = std::max(largest, ranks() * u.chunk16 / 2);
    }
    compute_.assign(at, 0);
    packed_.Resize(largest);
  }
  if (!options_.offload_params && !replicated) params_.Resize(shard);
  grads_.Resize(shard);
  if (!options_.offload_state) {
    m_.Resize(shard);
    v_.Resize(shard);
  }
  // A gathered unit may run up to ranks - 1 floats past its end (the last chunk's padding).
  resident_ = LazyBuffer(layout.NumElements() + ranks());
  resident_grads_ = LazyBuffer(layout.NumElements() + ranks());
  const int64_t block = ranks() * units_[0].chunk;
  for (int b = 0; b < 2; ++b) {
    // Stage 2 gathers blocks only after the update, one at a time.
    if (b == 0 || !replicated) gathered_[b].Resize(block);
    block_grads_[b].Resize(block);
  }
}

Zero3::~Zero3() { WaitAll().IgnoreError(); }

int64_t Zero3::WorkingBytes() const {
  const int L = layout_.config().n_layer;
  const int64_t resident = units_[L].size + units_[L + 1].size;
  return static_cast<int64_t>(sizeof(float)) *
         (gathered_[0].size() + gathered_[1].size() + 2 * block_grads_[0].size() + 2 * resident);
}

absl::Status Zero3::Gather(const Unit& u, float* dst, Communicator::Handle* handle, bool master) {
  const Unit* unit = &u;
  // Off the calling thread, AdamW must not use the compute pool (the model is computing on it).
  const bool inline_op = handle == nullptr || comm_ == nullptr;
  const bool bf16 = !master && !compute_.empty();
  auto op = [this, unit, dst, inline_op, bf16, master](Communicator* c) -> absl::Status {
    const float* mine = params_.data() + unit->shard;
    float* staged =
        options_.offload_params && !bf16 ? reinterpret_cast<float*>(staging_->slot(0)) : nullptr;
    const size_t index = unit - units_.data();
    if (pending_[index]) {
      // The deferred AdamW update of this unit, just before it is needed.
      STRATA_RETURN_IF_ERROR(UpdateUnit(*unit, staged, /*parallel=*/inline_op));
      pending_[index] = 0;
    } else if (staged != nullptr) {
      STRATA_RETURN_IF_ERROR(LoadChunk(*unit, staged));
    } else if (master && options_.offload_params) {
      staged = reinterpret_cast<float*>(staging_->slot(0));
      STRATA_RETURN_IF_ERROR(LoadChunk(*unit, staged));
    }
    if (staged != nullptr) mine = staged;
    const int n = c != nullptr ? c->size() : 1;
    if (bf16) {
      // The bf16 chunks travel two to a float, then widen into the fp32 block.
      const float* packed_mine = reinterpret_cast<const float*>(ComputeCopy(*unit));
      if (c != nullptr) {
        STRATA_RETURN_IF_ERROR(c->AllGather(absl::MakeConstSpan(packed_mine, unit->chunk16 / 2),
                                            absl::MakeSpan(packed_.data(), n * unit->chunk16 / 2)));
      } else {
        std::memcpy(packed_.data(), packed_mine, unit->chunk16 * sizeof(uint16_t));
      }
      const uint16_t* all = reinterpret_cast<const uint16_t*>(packed_.data());
      for (int r = 0; r < n; ++r) {
        for (int64_t j = 0; j < unit->chunk; ++j) {
          dst[r * unit->chunk + j] = Bf16ToFloat(all[r * unit->chunk16 + j]);
        }
      }
      return absl::OkStatus();
    }
    if (c == nullptr) {
      std::memcpy(dst, mine, unit->chunk * sizeof(float));
      return absl::OkStatus();
    }
    return c->AllGather(absl::MakeConstSpan(mine, unit->chunk),
                        absl::MakeSpan(dst, n * unit->chunk));
  };
  if (inline_op) return op(comm_);
  *handle = comm_->Async([op](Communicator& c) { return op(&c); });
  return absl::OkStatus();
}

absl::Status Zero3::Reduce(const Unit& u, float* buf, Communicator::Handle* handle) {
  float* mine = grads_.data() + u.shard;
  const float* own = buf + rank() * u.chunk;
  const size_t bytes = u.chunk * sizeof(float);
  if (comm_ == nullptr) {
    std::memcpy(mine, own, bytes);
    return absl::OkStatus();
  }
  // An all-reduce in place (the buffer is ours to overwrite): the same traffic as Gloo's
  // reduce-scatter, without its copy of the input.
  auto op = [all = absl::MakeSpan(buf, ranks() * u.chunk), mine, own, bytes](Communicator& c) {
    if (absl::Status s = c.AllReduceSum(all); !s.ok()) return s;
    std::memcpy(mine, own, bytes);
    return absl::OkStatus();
  };
  if (handle == nullptr) return op(*comm_);
  *handle = comm_->Async(op);
  return absl::OkStatus();
}

absl::Status Zero3::WaitAll() {
  absl::Status status;
  for (Communicator::Handle* h :
       {&gather_done_[0], &gather_done_[1], &reduce_done_[0], &reduce_done_[1]}) {
    status.Update(h->Wait());
    *h = Communicator::Handle();
  }
  return status;
}

absl::Status Zero3::GatherResident() {
  STRATA_RETURN_IF_ERROR(WaitAll());               // Synchronous collectives follow.
  if (arena_ != nullptr) return absl::OkStatus();  // Stage 2: the arena holds them.
  const int L = layout_.config().n_layer;
  for (const Unit* u : {&units_[L], &units_[L + 1]}) {
    STRATA_RETURN_IF_ERROR(Gather(*u, resident_.data() + u->begin, nullptr));
  }
  return absl::OkStatus();
}

absl::Status Zero3::IssueBlockGather(int buffer, int layer) {
  STRATA_RETURN_IF_ERROR(gather_done_[buffer].Wait());
  held_[buffer] = layer;
  return Gather(units_[layer], gathered_[buffer].data(), &gather_done_[buffer]);
}

absl::Status Zero3::Begin(const float** resident, float** resident_grads) {
  STRATA_RETURN_IF_ERROR(GatherResident());
  const int L = layout_.config().n_layer;
  for (const Unit* u : {&units_[L], &units_[L + 1]}) {
    std::memset(resident_grads_.data() + u->begin, 0, ranks() * u->chunk * sizeof(float));
  }
  *resident = arena_ != nullptr ? arena_ : resident_.data();
  *resident_grads = resident_grads_.data();
  // Block 0's gather runs while the embeddings compute.
  if (arena_ == nullptr && held_[0] != 0 && held_[1] != 0) {
    STRATA_RETURN_IF_ERROR(IssueBlockGather(0, 0));
  }
  return absl::OkStatus();
}

absl::StatusOr<const float*> Zero3::BlockWeights(int layer, bool backward) {
  const int L = layout_.config().n_layer;
  if (layer < 0 || layer >= L) return absl::OutOfRangeError(absl::StrCat("no layer ", layer));
  if (arena_ != nullptr) return arena_ + layout_.BlockBegin(layer);  // Stage 2: in place.
  int b = held_[0] == layer ? 0 : held_[1] == layer ? 1 : -1;
  if (b < 0) {
    b = current_ == 0 ? 1 : 0;  // Not the buffer the model used last.
    STRATA_RETURN_IF_ERROR(IssueBlockGather(b, layer));
  }
  STRATA_RETURN_IF_ERROR(gather_done_[b].Wait());
  gather_done_[b] = Communicator::Handle();
  current_ = b;
  // Prefetch the next block of the pass into the other buffer (the one the model is done with).
  const int next = backward ? layer - 1 : (layer + 1 < L ? layer + 1 : -1);
  if (next >= 0 && held_[0] != next && held_[1] != next) {
    STRATA_RETURN_IF_ERROR(IssueBlockGather(1 - b, next));
  }
  return gathered_[b].data();
}

absl::StatusOr<float*> Zero3::BlockGrads(int layer) {
  const int b = next_grad_;
  STRATA_RETURN_IF_ERROR(reduce_done_[b].Wait());
  reduce_done_[b] = Communicator::Handle();
  grad_layer_[b] = layer;
  std::memset(block_grads_[b].data(), 0, block_grads_[b].size() * sizeof(float));
  return block_grads_[b].data();
}

absl::Status Zero3::BlockGradsDone(int layer) {
  const int b = next_grad_;
  if (grad_layer_[b] != layer) {
    return absl::FailedPreconditionError(
        absl::StrCat("gradient of layer ", layer, " finished out of order"));
  }
  next_grad_ = 1 - b;
  return Reduce(units_[layer], block_grads_[b].data(), &reduce_done_[b]);
}

absl::Status Zero3::End() {
  STRATA_RETURN_IF_ERROR(WaitAll());
  const int L = layout_.config().n_layer;
  for (const Unit* u : {&units_[L], &units_[L + 1]}) {
    STRATA_RETURN_IF_ERROR(Reduce(*u, resident_grads_.data() + u->begin, nullptr));
  }
  return absl::OkStatus();
}

absl::StatusOr<double> Zero3::Step(float lr) {
  STRATA_RETURN_IF_ERROR(WaitAll());
  ++step_;
  const int w = ranks();
  const float inv = 1.0f / static_cast<float>(w);
  float* g = grads_.data();
  const int64_t n = grads_.size();
  if (w > 1) {
    for (int64_t i = 0; i < n; ++i) g[i] *= inv;
  }
  // Global norm: each rank's partial as a (hi, lo) float pair, summed in rank order.
  const double sq = SumOfSquares(grads_.span());
  const float mine[2] = {static_cast<float>(sq),
                         static_cast<float>(sq - static_cast<double>(static_cast<float>(sq)))};
  std::vector<float> partials(2 * w);
  if (comm_ != nullptr) {
    STRATA_RETURN_IF_ERROR(
        comm_->AllGather(absl::MakeConstSpan(mine, 2), absl::MakeSpan(partials)));
  } else {
    partials.assign(mine, mine + 2);
  }
  double total = 0;
  for (int r = 0; r < w; ++r) {
    total += static_cast<double>(partials[2 * r]) + static_cast<double>(partials[2 * r + 1]);
  }
  const double norm = std::sqrt(total);
  if (options_.grad_clip > 0 && norm > options_.grad_clip) {
    const float scale = static_cast<float>(options_.grad_clip / (norm + 1e-6));
    for (int64_t i = 0; i < n; ++i) g[i] *= scale;
  }
  if (!offloaded()) {
    for (const Unit& u : units_) {
      AdamWOverRange(layout_, options_.adam, OwnBegin(u), OwnEnd(u), OwnParams(u), g + u.shard,
                     m_.data() + u.shard, v_.data() + u.shard, lr, step_,
                     /*parallel=*/true, ComputeCopy(u));
    }
  } else if (arena_ != nullptr) {
    // Stage 2 gathers nothing before the next pass: the state streams through now.
    pending_lr_ = lr;
    for (const Unit& u : units_) STRATA_RETURN_IF_ERROR(UpdateUnit(u, nullptr, true));
  } else {
    // Offloaded: each unit's update is deferred to its next gather (Gather), where it runs on
    // the communicator's thread while the model computes the blocks before it.
    std::fill(pending_.begin(), pending_.end(), 1);
    pending_lr_ = lr;
  }
  held_[0] = held_[1] = -1;  // Gathered copies are stale now.
  if (arena_ != nullptr) STRATA_RETURN_IF_ERROR(AllGatherIntoArena());
  return norm;
}

absl::Status Zero3::UpdateUnit(const Unit& u, float* staged, bool parallel) {
  SubgroupStreamBytes bytes;
  const float* g = grads_.data();
  STRATA_RETURN_IF_ERROR(StreamSubgroups(
      *store_, *slab_, u.groups,
      [this, &u](int i) {
        std::vector<int> ids;
        if (options_.offload_params) ids.push_back(params_extent(u.first_group + i));
        if (options_.offload_state) ids.push_back(state_extent(u.first_group + i));
        return ids;
      },
      [&](int i, const std::vector<char*>& slots) {
        const Subgroup& sg = groups_[u.first_group + i];
        const int64_t at = u.shard + sg.offset;
        float* p =
            options_.offload_params ? reinterpret_cast<float*>(slots[0]) : OwnParams(u) + sg.offset;
        float* state = options_.offload_state ? reinterpret_cast<float*>(slots.back()) : nullptr;
        float* m = state != nullptr ? state : m_.data() + at;
        float* v = state != nullptr ? state + sg.count : v_.data() + at;
        const int64_t lo = OwnBegin(u) + sg.offset;
        uint16_t* copy = ComputeCopy(u);
        AdamWOverRange(layout_, options_.adam, lo, lo + sg.count, p, g + at, m, v, pending_lr_,
                       step_, parallel, copy != nullptr ? copy + sg.offset : nullptr);
        if (staged != nullptr) std::memcpy(staged + sg.offset, p, sg.count * sizeof(float));
      },
      &bytes));
  nvme_read_ += bytes.read;
  nvme_written_ += bytes.written;
  if (staged != nullptr) {
    const int64_t own = OwnEnd(u) - OwnBegin(u);
    std::memset(staged + own, 0, (u.chunk - own) * sizeof(float));
  }
  return absl::OkStatus();
}

absl::Status Zero3::AllGatherIntoArena() {
  if (comm_ == nullptr || ranks() == 1) return absl::OkStatus();
  for (const Unit& u : units_) {
    // This rank's chunk, zero-padded, into the gather buffer's own slot; then everyone's.
    float* all = u.size > units_[0].size ? resident_.data() + u.begin : gathered_[0].data();
    float* mine = block_grads_[0].data();  // Free between passes; at least a chunk.
    if (u.chunk > block_grads_[0].size()) mine = resident_grads_.data() + u.begin;
    const int64_t own = OwnEnd(u) - OwnBegin(u);
    std::memcpy(mine, arena_ + OwnBegin(u), own * sizeof(float));
    std::memset(mine + own, 0, (u.chunk - own) * sizeof(float));
    STRATA_RETURN_IF_ERROR(comm_->AllGather(absl::MakeConstSpan(mine, u.chunk),
                                            absl::MakeSpan(all, ranks() * u.chunk)));
    std::memcpy(arena_ + u.begin, all, u.size * sizeof(float));
  }
  return absl::OkStatus();
}

absl::Status Zero3::FlushUpdates() {
  STRATA_RETURN_IF_ERROR(WaitAll());
  for (size_t i = 0; i < units_.size(); ++i) {
    if (!pending_[i]) continue;
    STRATA_RETURN_IF_ERROR(UpdateUnit(units_[i], nullptr, /*parallel=*/true));
    pending_[i] = 0;
  }
  return absl::OkStatus();
}

absl::StatusOr<float> Zero3::Loss(Transformer& model, absl::Span<const int32_t> tokens,
                                  absl::Span<const int32_t> targets, int B, int T) {
  STRATA_RETURN_IF_ERROR(GatherResident());
  const float* resident = arena_ != nullptr ? arena_ : resident_.data();
  STRATA_RETURN_IF_ERROR(model.BeginForward(resident, tokens, B, T));
  for (int l = 0; l < layout_.config().n_layer; ++l) {
    STRATA_ASSIGN_OR_RETURN(const float* w, BlockWeights(l, false));
    model.BlockForward(l, w);
  }
  return model.EndForward(resident, targets);
}

absl::Status Zero3::GatherWeights(absl::Span<float> arena) {
  if (static_cast<int64_t>(arena.size()) != layout_.NumElements()) {
    return absl::InvalidArgumentError("GatherWeights needs the whole arena");
  }
  STRATA_RETURN_IF_ERROR(WaitAll());
  if (arena_ != nullptr) {  // Stage 2: already whole.
    if (arena.data() != arena_) {
      std::memcpy(arena.data(), arena_, arena.size() * sizeof(float));
    }
    return absl::OkStatus();
  }
  const int L = layout_.config().n_layer;
  for (const Unit* u : {&units_[L], &units_[L + 1]}) {
    // The fp32 masters (the resident copies may be bf16), then into the arena.
    STRATA_RETURN_IF_ERROR(Gather(*u, resident_.data() + u->begin, nullptr, /*master=*/true));
    std::memcpy(arena.data() + u->begin, resident_.data() + u->begin, u->size * sizeof(float));
  }
  held_[0] = held_[1] = -1;
  for (int l = 0; l < L; ++l) {
    STRATA_RETURN_IF_ERROR(Gather(units_[l], gathered_[0].data(), nullptr, /*master=*/true));
    std::memcpy(arena.data() + units_[l].begin, gathered_[0].data(),
                units_[l].size * sizeof(float));
  }
  return absl::OkStatus();
}

absl::Status Zero3::SaveShard(const std::string& path) {
  STRATA_RETURN_IF_ERROR(FlushUpdates());
  std::vector<SafetensorsTensorView> tensors;
  for (int k = 0; k < static_cast<int>(groups_.size()); ++k) {
    const Subgroup& sg = groups_[k];
    const int64_t at = units_[sg.unit].shard + sg.offset;
    SafetensorsTensorView p{
        absl::StrCat("params.", k), {sg.count}, OwnParams(units_[sg.unit]) + sg.offset};
    SafetensorsTensorView m{absl::StrCat("m.", k), {sg.count}, m_.data() + at};
    SafetensorsTensorView v{absl::StrCat("v.", k), {sg.count}, v_.data() + at};
    if (options_.offload_params) {
      p.data = nullptr;
      p.source = [this, k]() -> absl::StatusOr<const float*> {
        STRATA_RETURN_IF_ERROR(ReadExtent(*store_, params_extent(k), slab_->slot(0)));
        return reinterpret_cast<const float*>(slab_->slot(0));
      };
    }
    if (options_.offload_state) {
      m.data = v.data = nullptr;
      m.source = [this, k]() -> absl::StatusOr<const float*> {
        STRATA_RETURN_IF_ERROR(ReadExtent(*store_, state_extent(k), slab_->slot(1)));
        return reinterpret_cast<const float*>(slab_->slot(1));
      };
      v.source = [this, k, count = sg.count]() -> absl::StatusOr<const float*> {
        return reinterpret_cast<const float*>(slab_->slot(1)) + count;  // Read for m.
      };
    }
    tensors.push_back(std::move(p));
    tensors.push_back(std::move(m));
    tensors.push_back(std::move(v));
  }
  return WriteSafetensors(path, tensors,
                          {{"format", "strata-zero3-shard"},
                           {"ranks", absl::StrCat(ranks())},
                           {"subgroups", absl::StrCat(groups_.size())}});
}

absl::Status Zero3::LoadShard(const std::string& path) {
  STRATA_RETURN_IF_ERROR(WaitAll());
  std::fill(pending_.begin(), pending_.end(), 0);  // The loaded state replaces them.
  STRATA_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(path));
  auto read = [&](const std::string& name, int64_t count, float* out) -> absl::Status {
    const SafetensorsEntry* e = file.header().Find(name);
    if (e == nullptr || e->numel() != count) {
      return absl::DataLossError(absl::StrCat(path, ": tensor \"", name, "\" ",
                                              e == nullptr ? "is missing" : "has another size",
                                              " (a shard of another world size or layout?)"));
    }
    return file.ReadF32(*e, out);
  };
  for (int k = 0; k < static_cast<int>(groups_.size()); ++k) {
    const Subgroup& sg = groups_[k];
    const int64_t at = units_[sg.unit].shard + sg.offset;
    float* p = options_.offload_params ? reinterpret_cast<float*>(slab_->slot(0))
                                       : OwnParams(units_[sg.unit]) + sg.offset;
    float* state = options_.offload_state ? reinterpret_cast<float*>(slab_->slot(1)) : nullptr;
    STRATA_RETURN_IF_ERROR(read(absl::StrCat("params.", k), sg.count, p));
    STRATA_RETURN_IF_ERROR(
        read(absl::StrCat("m.", k), sg.count, state != nullptr ? state : m_.data() + at));
    STRATA_RETURN_IF_ERROR(read(absl::StrCat("v.", k), sg.count,
                                state != nullptr ? state + sg.count : v_.data() + at));
    if (uint16_t* copy = ComputeCopy(units_[sg.unit]); copy != nullptr) {
      for (int64_t j = 0; j < sg.count; ++j) copy[sg.offset + j] = FloatToBf16(p[j]);
    }
    if (options_.offload_params) STRATA_RETURN_IF_ERROR(WriteExtent(*store_, params_extent(k), p));
    if (state != nullptr) STRATA_RETURN_IF_ERROR(WriteExtent(*store_, state_extent(k), state));
  }
  if (static_cast<int64_t>(file.header().tensors.size()) !=
      3 * static_cast<int64_t>(groups_.size())) {
    return absl::DataLossError(absl::StrCat(path, ": holds ", file.header().tensors.size(),
                                            " tensors, this shard has ", 3 * groups_.size()));
  }
  held_[0] = held_[1] = -1;
  // Stage 2: every rank loaded its chunks; the others' come by all-gather.
  if (arena_ != nullptr) return AllGatherIntoArena();
  return absl::OkStatus();
}

}  // namespace strata
