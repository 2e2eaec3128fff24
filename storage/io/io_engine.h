// Asynchronous file I/O for the NVMe tier: submit reads and writes of whole buffers at file
// offsets, reap completions. Two implementations behind one interface:
// - UringEngine (liburing): one ring, registered files, registered buffers (read_fixed /
//   write_fixed when a buffer lies in a registered region), requests split into block_bytes
//   pieces, up to queue_depth pieces in flight, batched submission;
// - ThreadPoolEngine: pread/pwrite on worker threads, the fallback where io_uring is unavailable
//   (seccomp, sysctl kernel.io_uring_disabled).
// Both retry EINTR/EAGAIN and resubmit short transfers; a failure completes the request with a
// status naming the file, the offset and the errno. CreateIoEngine picks io_uring when it works
// and says why when it does not.
//
// Not thread-safe: one engine is driven by one thread.
#ifndef STRATA_STORAGE_IO_IO_ENGINE_H_
#define STRATA_STORAGE_IO_IO_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace strata {

// An open file. With O_DIRECT (direct() true), buffers, offsets and lengths must be multiples of
// 4096 bytes. Filesystems that refuse O_DIRECT (tmpfs) get buffered I/O and `direct_refused`.
class IoFile {
 public:
  enum class Mode { kRead, kReadWrite, kCreate };
  static absl::StatusOr<std::unique_ptr<IoFile>> Open(const std::string& path, Mode mode,
                                                      bool prefer_direct);
  // Open with the open(2) call injected (fault injection in tests).
  using OpenFn = int (*)(const char* path, int flags, int mode);
  static absl::StatusOr<std::unique_ptr<IoFile>> OpenWith(const std::string& path, Mode mode,
                                                          bool prefer_direct, OpenFn open_fn);
  ~IoFile();
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  bool direct() const { return direct_; }
  bool direct_refused() const { return direct_refused_; }

 private:
  IoFile(std::string path, int fd, bool direct, bool refused)
      : path_(std::move(path)), fd_(fd), direct_(direct), direct_refused_(refused) {}
  std::string path_;
  int fd_;
  bool direct_;
  bool direct_refused_;
};

inline constexpr int64_t kDirectIoAlignment = 4096;

struct IoRequest {
  enum class Op { kRead, kWrite };
  Op op = Op::kRead;
  IoFile* file = nullptr;
  void* buffer = nullptr;
  int64_t offset = 0;
  int64_t length = 0;
  uint64_t tag = 0;  // Returned in the completion.
};

struct IoCompletion {
  uint64_t tag = 0;
  absl::Status status;
  int64_t bytes = 0;  // Transferred (== length on success).
};

struct IoEngineOptions {
  int queue_depth = 32;           // Pieces in flight.
  int64_t block_bytes = 4 << 20;  // Largest piece (1-8 MiB recommended).
  bool use_io_uring = true;       // false forces the thread-pool engine.
  int threads = 4;                // ThreadPoolEngine workers.
  // Fault injection for tests: sees each raw transfer result (bytes, or -errno) and returns the
  // result the engine should act on (e.g. -EINTR, or fewer bytes for a short transfer).
  std::function<int64_t(int64_t result)> fault_injector;
};

class IoEngine {
 public:
  virtual ~IoEngine() = default;
  // "io_uring" or "threads".
  virtual const char* name() const = 0;
  // Registers memory for zero-copy fixed-buffer I/O (io_uring); a no-op for the thread pool.
  // Regions larger than 1 GiB are registered in 1 GiB pieces.
  virtual absl::Status RegisterBuffer(void* data, int64_t bytes) = 0;
  // Queues requests; never blocks for their completion.
  virtual absl::Status Submit(absl::Span<const IoRequest> requests) = 0;
  // Waits until at least `min` requests have completed (fewer if fewer are outstanding) and
  // appends finished ones to `out`.
  virtual absl::Status Reap(int min, std::vector<IoCompletion>* out) = 0;
  virtual int outstanding() const = 0;
};

// The io_uring engine when the kernel allows it, else the thread pool; `why_fallback` (if not
// null) receives the reason when the fallback was taken.
absl::StatusOr<std::unique_ptr<IoEngine>> CreateIoEngine(const IoEngineOptions& options,
                                                         std::string* why_fallback = nullptr);

// Submits `requests` and waits for all of them; the first failure is returned.
absl::Status RunAll(IoEngine& engine, absl::Span<const IoRequest> requests);

}  // namespace strata

#endif  // STRATA_STORAGE_IO_IO_ENGINE_H_
