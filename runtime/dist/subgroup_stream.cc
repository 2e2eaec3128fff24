// See subgroup_stream.h.
#include "runtime/dist/subgroup_stream.h"

#include <algorithm>

#include "runtime/base/status_macros.h"

namespace strata {
namespace {

absl::Status Transfer(TensorStore& store, int id, void* buffer, bool read) {
  STRATA_RETURN_IF_ERROR(read ? store.SubmitRead(id, buffer, 0) : store.SubmitWrite(id, buffer, 0));
  std::vector<IoCompletion> done;
  while (done.empty()) STRATA_RETURN_IF_ERROR(store.Reap(1, &done));
  return done[0].status;
}

}  // namespace

absl::Status ReadExtent(TensorStore& store, int id, void* buffer) {
  return Transfer(store, id, buffer, true);
}

absl::Status WriteExtent(TensorStore& store, int id, const void* buffer) {
  return Transfer(store, id, const_cast<void*>(buffer), false);
}

absl::Status StreamSubgroups(
    TensorStore& store, PinnedSlab& slab, int groups,
    const std::function<std::vector<int>(int g)>& extents,
    const std::function<void(int g, const std::vector<char*>& slots)>& process,
    SubgroupStreamBytes* bytes) {
  const int per_set = slab.slots() / 3;
  // Outstanding transfers per group; tag = 2 g (+1 for a write).
  std::vector<int> reads_left(groups, 0), writes_left(groups, 0);
  std::vector<std::vector<int>> ids(groups);
  auto slots_of = [&](int g) {
    std::vector<char*> slots;
    for (size_t i = 0; i < ids[g].size(); ++i) slots.push_back(slab.slot((g % 3) * per_set + i));
    return slots;
  };
  auto wait_until = [&](const std::vector<int>& left, int g) -> absl::Status {
    while (left[g] > 0) {
      std::vector<IoCompletion> done;
      STRATA_RETURN_IF_ERROR(store.Reap(1, &done));
      for (const IoCompletion& c : done) {
        STRATA_RETURN_IF_ERROR(c.status);
        --(c.tag % 2 == 0 ? reads_left : writes_left)[c.tag / 2];
      }
    }
    return absl::OkStatus();
  };
  auto read = [&](int g) -> absl::Status {
    ids[g] = extents(g);
    if (static_cast<int>(ids[g].size()) > per_set) {
      return absl::InvalidArgumentError("a sub-group has more extents than a slot set");
    }
    const std::vector<char*> slots = slots_of(g);
    for (size_t i = 0; i < ids[g].size(); ++i) {
      bytes->read += store.padded_bytes(ids[g][i]);
      ++reads_left[g];
      STRATA_RETURN_IF_ERROR(store.SubmitRead(ids[g][i], slots[i], 2 * static_cast<uint64_t>(g)));
    }
    return absl::OkStatus();
  };
  if (groups > 0) STRATA_RETURN_IF_ERROR(read(0));
  for (int g = 0; g < groups; ++g) {
    if (g + 1 < groups) {
      // Group g + 1's slots last held group g - 2: its writes must have finished.
      if (g >= 2) STRATA_RETURN_IF_ERROR(wait_until(writes_left, g - 2));
      STRATA_RETURN_IF_ERROR(read(g + 1));
    }
    STRATA_RETURN_IF_ERROR(wait_until(reads_left, g));
    const std::vector<char*> slots = slots_of(g);
    process(g, slots);
    for (size_t i = 0; i < ids[g].size(); ++i) {
      bytes->written += store.padded_bytes(ids[g][i]);
      ++writes_left[g];
      STRATA_RETURN_IF_ERROR(
          store.SubmitWrite(ids[g][i], slots[i], 2 * static_cast<uint64_t>(g) + 1));
    }
  }
  for (int g = std::max(0, groups - 3); g < groups; ++g) {
    STRATA_RETURN_IF_ERROR(wait_until(writes_left, g));
  }
  return absl::OkStatus();
}

}  // namespace strata
