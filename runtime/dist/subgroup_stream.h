// Streams sub-groups of training state that live in NVMe extents (a TensorStore) through three
// sets of pinned slots, ZeRO-Infinity style: while sub-group g is processed in its slots, g + 1
// is being read and g - 1 written back. A sub-group may span several extents (say a weight
// shard and its AdamW state); each gets its own slot of the set.
#ifndef STRATA_RUNTIME_DIST_SUBGROUP_STREAM_H_
#define STRATA_RUNTIME_DIST_SUBGROUP_STREAM_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "storage/pinned_slab.h"
#include "storage/tensor_store.h"

namespace strata {

struct SubgroupStreamBytes {
  int64_t read = 0, written = 0;
};

// `extents(g)` lists the extent ids of sub-group g (at most slab.slots() / 3, each fitting a
// slot); `process(g, slots)` updates them in place (slots[i] holds extents(g)[i]). Every
// extent is read before and written after. Returns the first I/O error.
absl::Status StreamSubgroups(
    TensorStore& store, PinnedSlab& slab, int groups,
    const std::function<std::vector<int>(int g)>& extents,
    const std::function<void(int g, const std::vector<char*>& slots)>& process,
    SubgroupStreamBytes* bytes);

// Reads (or writes) one extent synchronously through `buffer` (a slot).
absl::Status ReadExtent(TensorStore& store, int id, void* buffer);
absl::Status WriteExtent(TensorStore& store, int id, const void* buffer);

}  // namespace strata

#endif  // STRATA_RUNTIME_DIST_SUBGROUP_STREAM_H_
