// See tensor_store.h.
#include "storage/tensor_store.h"

#include <sys/stat.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "runtime/base/errno_status.h"
#include "storage/atomic_file.h"
#include "xxhash.h"

namespace strata {

absl::StatusOr<std::unique_ptr<TensorStore>> TensorStore::Create(
    const Options& options, std::vector<int64_t> extent_bytes) {
  if (options.paths.empty()) return absl::InvalidArgumentError("tensor store needs a path");
  if (options.engine == nullptr) return absl::InvalidArgumentError("tensor store needs an engine");
  std::unique_ptr<TensorStore> store(new TensorStore());
  store->options_ = options;
  for (const std::string& dir : options.paths) {
    if (absl::Status s = MakeDirs(dir); !s.ok()) return s;
    absl::StatusOr<std::unique_ptr<IoFile>> file =
        IoFile::Open(absl::StrCat(dir, "/strata-", options.name, "-rank", options.rank, ".bin"),
                     IoFile::Mode::kCreate, /*prefer_direct=*/true);
    if (!file.ok()) return file.status();
    store->files_.push_back(*std::move(file));
  }
  std::vector<int64_t> next(options.paths.size(), 0);
  for (size_t i = 0; i < extent_bytes.size(); ++i) {
    if (extent_bytes[i] < 0) {
      return absl::InvalidArgumentError(absl::StrCat("extent ", i, " has a negative size"));
    }
    Extent e;
    e.file = static_cast<int>(i % options.paths.size());
    e.offset = next[e.file];
    e.bytes = extent_bytes[i];
    next[e.file] += Padded(e.bytes);
    store->extents_.push_back(e);
  }
  return store;
}

const std::string& TensorStore::file_of(int id) const { return files_[extents_[id].file]->path(); }

absl::Status TensorStore::Queue(int id, bool read, void* buffer, uint64_t tag) {
  if (id < 0 || id >= extents()) {
    return absl::InvalidArgumentError(absl::StrCat("extent ", id, " does not exist"));
  }
  Extent& e = extents_[id];
  if (read && !e.written) {
    return absl::FailedPreconditionError(absl::StrCat("extent ", id, " was never written"));
  }
  if (!read && options_.checksums) {
    e.checksum = XXH3_64bits(buffer, static_cast<size_t>(e.bytes));
  }
  const uint64_t engine_tag = next_tag_++;
  const IoRequest request{read ? IoRequest::Op::kRead : IoRequest::Op::kWrite,
                          files_[e.file].get(),
                          buffer,
                          e.offset,
                          Padded(e.bytes),
                          engine_tag};
  if (absl::Status s = options_.engine->Submit({&request, 1}); !s.ok()) return s;
  in_flight_[engine_tag] = {id, read, buffer, tag};
  return absl::OkStatus();
}

absl::Status TensorStore::SubmitWrite(int id, const void* buffer, uint64_t tag) {
  return Queue(id, false, const_cast<void*>(buffer), tag);
}

absl::Status TensorStore::SubmitRead(int id, void* buffer, uint64_t tag) {
  return Queue(id, true, buffer, tag);
}

absl::Status TensorStore::Reap(int min, std::vector<IoCompletion>* out) {
  std::vector<IoCompletion> done;
  if (absl::Status s = options_.engine->Reap(min, &done); !s.ok()) return s;
  for (IoCompletion& c : done) {
    auto it = in_flight_.find(c.tag);
    if (it == in_flight_.end()) continue;  // Not ours.
    const InFlight f = it->second;
    in_flight_.erase(it);
    Extent& e = extents_[f.id];
    c.tag = f.tag;
    if (c.status.ok() && !f.read) e.written = true;
    if (c.status.ok() && f.read && options_.checksums &&
        XXH3_64bits(f.buffer, static_cast<size_t>(e.bytes)) != e.checksum) {
      c.status = absl::DataLossError(absl::StrCat(files_[e.file]->path(), " at offset ", e.offset,
                                                  ": extent ", f.id, " fails its checksum"));
    }
    out->push_back(std::move(c));
  }
  return absl::OkStatus();
}

}  // namespace strata
