// See io_engine.h.
#include "storage/io/io_engine.h"

#include <fcntl.h>
#include <liburing.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "runtime/base/errno_status.h"

namespace strata {
namespace {

constexpr int64_t kMaxRegistration = int64_t{1} << 30;

// One piece of a request: at most block_bytes, transferred by one SQE (or pread/pwrite loop).
struct Piece {
  uint64_t request = 0;  // Key into the engine's request table.
  IoRequest::Op op = IoRequest::Op::kRead;
  IoFile* file = nullptr;
  char* buffer = nullptr;
  int64_t offset = 0;
  int64_t length = 0;
  int64_t done = 0;
};

struct RequestState {
  uint64_t tag = 0;
  int pieces_left = 0;
  int64_t bytes = 0;
  absl::Status status;
};

std::string What(const Piece& p) {
  return absl::StrCat(p.op == IoRequest::Op::kRead ? "read " : "write ", p.file->path(),
                      " at offset ", p.offset + p.done);
}

absl::Status Validate(const IoRequest& r) {
  if (r.file == nullptr || r.buffer == nullptr || r.length < 0 || r.offset < 0) {
    return absl::InvalidArgumentError("I/O request needs a file, a buffer and a valid range");
  }
  if (r.file->direct() &&
      (reinterpret_cast<uintptr_t>(r.buffer) % kDirectIoAlignment != 0 ||
       r.offset % kDirectIoAlignment != 0 || r.length % kDirectIoAlignment != 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        r.file->path(), ": O_DIRECT needs 4096-byte aligned buffer, offset and length (offset ",
        r.offset, ", length ", r.length, ")"));
  }
  return absl::OkStatus();
}

// Request bookkeeping shared by both engines.
class RequestTable {
 public:
  // Splits `r` into pieces appended to `pieces`.
  void Add(const IoRequest& r, int64_t block, std::deque<Piece>* pieces) {
    const uint64_t id = next_++;
    RequestState& state = states_[id];
    state.tag = r.tag;
    for (int64_t off = 0; off < r.length || (off == 0 && r.length == 0); off += block) {
      Piece p;
      p.request = id;
      p.op = r.op;
      p.file = r.file;
      p.buffer = static_cast<char*>(r.buffer) + off;
      p.offset = r.offset + off;
      p.length = std::min(block, r.length - off);
      pieces->push_back(p);
      ++state.pieces_left;
      if (r.length == 0) break;
    }
  }
  // Records a finished piece; appends the request's completion when it was the last one.
  void Finish(const Piece& p, absl::Status status, std::vector<IoCompletion>* out) {
    auto it = states_.find(p.request);
    RequestState& state = it->second;
    state.bytes += p.done;
    if (state.status.ok() && !status.ok()) state.status = std::move(status);
    if (--state.pieces_left == 0) {
      out->push_back({state.tag, state.status, state.bytes});
      states_.erase(it);
    }
  }
  int outstanding() const { return static_cast<int>(states_.size()); }

 private:
  uint64_t next_ = 1;
  std::unordered_map<uint64_t, RequestState> states_;
};

class UringEngine final : public IoEngine {
 public:
  static absl::StatusOr<std::unique_ptr<UringEngine>> Create(const IoEngineOptions& options) {
    std::unique_ptr<UringEngine> engine(new UringEngine(options));
    const int rc = io_uring_queue_init(static_cast<unsigned>(std::max(2, options.queue_depth)),
                                       &engine->ring_, 0);
    if (rc < 0) return ErrnoStatus(-rc, "io_uring_queue_init");
    engine->ring_ok_ = true;
    engine->fixed_files_ = io_uring_register_files_sparse(&engine->ring_, kFileSlots) == 0;
    return engine;
  }
  ~UringEngine() override {
    if (ring_ok_) io_uring_queue_exit(&ring_);
  }
  const char* name() const override { return "io_uring"; }

  absl::Status RegisterBuffer(void* data, int64_t bytes) override {
    char* base = static_cast<char*>(data);
    for (int64_t off = 0; off < bytes; off += kMaxRegistration) {
      regions_.push_back({base + off, std::min(kMaxRegistration, bytes - off)});
    }
    std::vector<iovec> iov;
    for (const Region& r : regions_) iov.push_back({r.base, static_cast<size_t>(r.bytes)});
    if (registered_) io_uring_unregister_buffers(&ring_);
    const int rc = io_uring_register_buffers(&ring_, iov.data(), static_cast<unsigned>(iov.size()));
    if (rc < 0) {
      regions_.clear();
      registered_ = false;
      return ErrnoStatus(-rc, absl::StrCat("io_uring_register_buffers (", bytes,
                                           " bytes; locked memory limit too low?)"));
    }
    registered_ = true;
    return absl::OkStatus();
  }

  absl::Status Submit(absl::Span<const IoRequest> requests) override {
    for (const IoRequest& r : requests) {
      if (absl::Status s = Validate(r); !s.ok()) return s;
    }
    for (const IoRequest& r : requests) table_.Add(r, options_.block_bytes, &queued_);
    return Pump();
  }

  absl::Status Reap(int min, std::vector<IoCompletion>* out) override {
    const size_t start = out->size();
    while (static_cast<int>(out->size() - start) < min && table_.outstanding() > 0) {
      io_uring_cqe* cqe = nullptr;
      int rc = io_uring_wait_cqe(&ring_, &cqe);
      if (rc == -EINTR) continue;
      if (rc < 0) return ErrnoStatus(-rc, "io_uring_wait_cqe");
      unsigned head, seen = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        const int res = options_.fault_injector
                            ? static_cast<int>(options_.fault_injector(cqe->res))
                            : cqe->res;
        Complete(static_cast<Piece*>(io_uring_cqe_get_data(cqe)), res, out);
      }
      io_uring_cq_advance(&ring_, seen);
      if (absl::Status s = Pump(); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  int outstanding() const override { return table_.outstanding(); }

 private:
  static constexpr unsigned kFileSlots = 64;
  struct Region {
    char* base;
    int64_t bytes;
  };

  explicit UringEngine(const IoEngineOptions& options) : options_(options) {}

  int FixedFileIndex(int fd) {
    if (!fixed_files_) return -1;
    auto it = file_slots_.find(fd);
    if (it != file_slots_.end()) return it->second;
    if (file_slots_.size() >= kFileSlots) return -1;
    const int slot = static_cast<int>(file_slots_.size());
    if (io_uring_register_files_update(&ring_, slot, &fd, 1) < 0) return -1;
    file_slots_[fd] = slot;
    return slot;
  }

  int BufferIndex(const char* p, int64_t len) const {
    if (!registered_) return -1;
    for (size_t i = 0; i < regions_.size(); ++i) {
      if (p >= regions_[i].base && p + len <= regions_[i].base + regions_[i].bytes) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }

  // Moves queued pieces into the submission queue up to the depth, and submits them.
  absl::Status Pump() {
    int added = 0;
    while (in_flight_ < options_.queue_depth && !queued_.empty()) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) break;
      Piece* p = new Piece(queued_.front());
      queued_.pop_front();
      char* buf = p->buffer + p->done;
      const unsigned len = static_cast<unsigned>(p->length - p->done);
      const int64_t off = p->offset + p->done;
      const int slot = FixedFileIndex(p->file->fd());
      const int fd = slot >= 0 ? slot : p->file->fd();
      const int buf_index = BufferIndex(buf, len);
      if (p->op == IoRequest::Op::kRead) {
        if (buf_index >= 0) {
          io_uring_prep_read_fixed(sqe, fd, buf, len, off, buf_index);
        } else {
          io_uring_prep_read(sqe, fd, buf, len, off);
        }
      } else {
        if (buf_index >= 0) {
          io_uring_prep_write_fixed(sqe, fd, buf, len, off, buf_index);
        } else {
          io_uring_prep_write(sqe, fd, buf, len, off);
        }
      }
      if (slot >= 0) sqe->flags |= IOSQE_FIXED_FILE;
      io_uring_sqe_set_data(sqe, p);
      ++in_flight_;
      ++added;
    }
    while (added > 0) {
      const int rc = io_uring_submit(&ring_);
      if (rc == -EINTR || rc == -EAGAIN) continue;
      if (rc < 0) return ErrnoStatus(-rc, "io_uring_submit");
      break;
    }
    return absl::OkStatus();
  }

  void Complete(Piece* p, int res, std::vector<IoCompletion>* out) {
    --in_flight_;
    std::unique_ptr<Piece> owned(p);
    if (res == -EINTR || res == -EAGAIN) {
      queued_.push_front(*p);  // Retry as is.
      return;
    }
    if (res < 0) {
      table_.Finish(*p, ErrnoStatus(-res, What(*p)), out);
      return;
    }
    if (res == 0 && p->length > p->done) {
      table_.Finish(*p,
                    absl::OutOfRangeError(absl::StrCat(What(*p), ": end of file after ", p->done,
                                                       " of ", p->length, " bytes")),
                    out);
      return;
    }
    p->done += res;
    if (p->done < p->length) {
      queued_.push_front(*p);  // Short transfer: resubmit the rest.
      return;
    }
    table_.Finish(*p, absl::OkStatus(), out);
  }

  IoEngineOptions options_;
  io_uring ring_{};
  bool ring_ok_ = false;
  bool fixed_files_ = false;
  bool registered_ = false;
  std::vector<Region> regions_;
  std::unordered_map<int, int> file_slots_;
  std::deque<Piece> queued_;
  int in_flight_ = 0;
  RequestTable table_;
};

class ThreadPoolEngine final : public IoEngine {
 public:
  explicit ThreadPoolEngine(const IoEngineOptions& options) : options_(options) {
    for (int i = 0; i < std::max(1, options.threads); ++i) {
      workers_.emplace_back([this] { Work(); });
    }
  }
  ~ThreadPoolEngine() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (std::thread& t : workers_) t.join();
  }
  const char* name() const override { return "threads"; }
  absl::Status RegisterBuffer(void*, int64_t) override { return absl::OkStatus(); }

  absl::Status Submit(absl::Span<const IoRequest> requests) override {
    for (const IoRequest& r : requests) {
      if (absl::Status s = Validate(r); !s.ok()) return s;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const IoRequest& r : requests) table_.Add(r, options_.block_bytes, &queued_);
    }
    work_cv_.notify_all();
    return absl::OkStatus();
  }

  absl::Status Reap(int min, std::vector<IoCompletion>* out) override {
    std::unique_lock<std::mutex> lock(mu_);
    const int want = std::min(min, static_cast<int>(done_.size()) + table_.outstanding());
    done_cv_.wait(lock, [&] { return static_cast<int>(done_.size()) >= want; });
    out->insert(out->end(), done_.begin(), done_.end());
    done_.clear();
    return absl::OkStatus();
  }

  int outstanding() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return table_.outstanding() + static_cast<int>(done_.size());
  }

 private:
  void Work() {
    while (true) {
      Piece p;
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_cv_.wait(lock, [&] { return stop_ || !queued_.empty(); });
        if (stop_) return;
        p = queued_.front();
        queued_.pop_front();
      }
      absl::Status status;
      while (p.done < p.length) {
        ssize_t n =
            p.op == IoRequest::Op::kRead
                ? pread(p.file->fd(), p.buffer + p.done, p.length - p.done, p.offset + p.done)
                : pwrite(p.file->fd(), p.buffer + p.done, p.length - p.done, p.offset + p.done);
        int err = n < 0 ? errno : 0;
        if (options_.fault_injector) {
          const int64_t injected = options_.fault_injector(n < 0 ? -err : n);
          n = injected < 0 ? -1 : injected;
          err = injected < 0 ? static_cast<int>(-injected) : 0;
        }
        if (n < 0) {
          if (err == EINTR || err == EAGAIN) continue;
          status = ErrnoStatus(err, What(p));
          break;
        }
        if (n == 0) {
          status = absl::OutOfRangeError(
              absl::StrCat(What(p), ": end of file after ", p.done, " of ", p.length, " bytes"));
          break;
        }
        p.done += n;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        table_.Finish(p, std::move(status), &done_);
      }
      done_cv_.notify_all();
    }
  }

  IoEngineOptions options_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Piece> queued_;
  std::vector<IoCompletion> done_;
  RequestTable table_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<IoFile>> IoFile::Open(const std::string& path, Mode mode,
                                                     bool prefer_direct) {
  return OpenWith(path, mode, prefer_direct,
                  [](const char* p, int flags, int m) { return open(p, flags, m); });
}

absl::StatusOr<std::unique_ptr<IoFile>> IoFile::OpenWith(const std::string& path, Mode mode,
                                                         bool prefer_direct, OpenFn open_fn) {
  int flags = O_CLOEXEC;
  flags |= mode == Mode::kRead ? O_RDONLY : O_RDWR;
  if (mode == Mode::kCreate) flags |= O_CREAT;
  bool refused = false;
  if (prefer_direct) {
    const int fd = open_fn(path.c_str(), flags | O_DIRECT, 0644);
    if (fd >= 0) return std::unique_ptr<IoFile>(new IoFile(path, fd, true, false));
    if (errno != EINVAL) return ErrnoStatus(errno, absl::StrCat("open ", path));
    refused = true;  // The filesystem does not support O_DIRECT (e.g. tmpfs).
  }
  const int fd = open_fn(path.c_str(), flags, 0644);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  return std::unique_ptr<IoFile>(new IoFile(path, fd, false, refused));
}

IoFile::~IoFile() { close(fd_); }

absl::StatusOr<std::unique_ptr<IoEngine>> CreateIoEngine(const IoEngineOptions& options,
                                                         std::string* why_fallback) {
  if (options.queue_depth < 1 || options.block_bytes < kDirectIoAlignment ||
      options.block_bytes % kDirectIoAlignment != 0) {
    return absl::InvalidArgumentError(
        "queue_depth must be >= 1 and block_bytes a positive multiple of 4096");
  }
  if (options.use_io_uring) {
    absl::StatusOr<std::unique_ptr<UringEngine>> uring = UringEngine::Create(options);
    if (uring.ok()) return std::unique_ptr<IoEngine>(std::move(*uring));
    if (why_fallback != nullptr) {
      *why_fallback = absl::StrCat("io_uring unavailable (", uring.status().message(),
                                   "): using the pread/pwrite thread pool");
    }
  } else if (why_fallback != nullptr) {
    *why_fallback = "io_uring disabled by configuration: using the pread/pwrite thread pool";
  }
  return std::unique_ptr<IoEngine>(new ThreadPoolEngine(options));
}

absl::Status RunAll(IoEngine& engine, absl::Span<const IoRequest> requests) {
  if (absl::Status s = engine.Submit(requests); !s.ok()) return s;
  std::vector<IoCompletion> done;
  while (static_cast<int>(done.size()) < static_cast<int>(requests.size())) {
    if (absl::Status s = engine.Reap(1, &done); !s.ok()) return s;
  }
  for (const IoCompletion& c : done) {
    if (!c.status.ok()) return c.status;
  }
  return absl::OkStatus();
}

}  // namespace strata
