// The NVMe tensor store: the tensors (or blocks) of a model or of optimizer state as extents in
// per-rank files spread over one or more NVMe directories, addressed by stable extent id, read
// and written asynchronously through an IoEngine into caller buffers (pinned slab slots).
//
// Layout: extent i lives in file `<paths[i % P]>/strata-<name>-rank<R>.bin` at a 4 KiB-aligned
// offset; its on-disk size is its byte size rounded up to 4 KiB, so every transfer is
// O_DIRECT-legal. Buffers passed in must hold the padded size and be 4 KiB aligned.
// With checksums on, each write records the XXH3-64 of the extent's bytes and each read is
// verified against it; a mismatch completes the read with kDataLoss naming file, offset and
// extent. (Checksums live in memory; checkpoints persist them in their manifest.)
#ifndef STRATA_STORAGE_TENSOR_STORE_H_
#define STRATA_STORAGE_TENSOR_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/io/io_engine.h"

namespace strata {

class TensorStore {
 public:
  struct Options {
    std::vector<std::string> paths;  // NVMe directories (at least one).
    std::string name = "params";
    int rank = 0;
    bool checksums = true;
    IoEngine* engine = nullptr;  // Not owned.
  };

  // `extent_bytes[i]` is the byte size of extent i.
  static absl::StatusOr<std::unique_ptr<TensorStore>> Create(const Options& options,
                                                             std::vector<int64_t> extent_bytes);

  static int64_t Padded(int64_t bytes) { return (bytes + 4095) / 4096 * 4096; }
  int64_t padded_bytes(int id) const { return Padded(extents_[id].bytes); }
  int64_t extent_bytes(int id) const { return extents_[id].bytes; }
  int extents() const { return static_cast<int>(extents_.size()); }

  // Queue a transfer of extent `id`; `tag` comes back in the completion.
  absl::Status SubmitWrite(int id, const void* buffer, uint64_t tag);
  absl::Status SubmitRead(int id, void* buffer, uint64_t tag);
  // Waits for at least `min` completions; reads are checksum-verified before they are returned.
  absl::Status Reap(int min, std::vector<IoCompletion>* out);

  // Where extent `id` lives (for tests and manifests).
  const std::string& file_of(int id) const;
  int64_t offset_of(int id) const { return extents_[id].offset; }

 private:
  struct Extent {
    int file = 0;
    int64_t offset = 0;
    int64_t bytes = 0;
    uint64_t checksum = 0;
    bool written = false;
  };
  struct InFlight {
    int id;
    bool read;
    const void* buffer;
    uint64_t tag;
  };
  TensorStore() = default;
  absl::Status Queue(int id, bool read, void* buffer, uint64_t tag);

  Options options_;
  std::vector<std::unique_ptr<IoFile>> files_;
  std::vector<Extent> extents_;
  std::unordered_map<uint64_t, InFlight> in_flight_;  // By engine tag.
  uint64_t next_tag_ = 1;
};

}  // namespace strata

#endif  // STRATA_STORAGE_TENSOR_STORE_H_
