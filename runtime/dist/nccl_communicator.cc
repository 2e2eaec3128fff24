// The NCCL Communicator (CUDA builds): spans are device memory on the rank's GPU; each call
// enqueues the NCCL collective on the rank's stream and waits for it. Ranks meet through the
// same file store directory as Gloo: rank 0 writes the NCCL unique id (temp file + rename),
// the others wait for it up to the timeout. Without CUDA, CreateNcclCommunicator reports
// UNAVAILABLE.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "runtime/dist/communicator.h"
#include "runtime/dist/serial_executor.h"

#ifdef STRATA_WITH_CUDA
#include "runtime/dist/nccl_ops.h"
#endif

namespace strata {

#ifdef STRATA_WITH_CUDA
namespace {

absl::Status NcclStatus(int code, const char* what, int rank) {
  if (code == 0) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat(what, " failed on rank ", rank, ": ", nccl::ErrorString(code)));
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(void* comm, void* stream, float* scratch, int rank, int size)
      : comm_(comm), stream_(stream), scratch_(scratch), rank_(rank), size_(size) {}
  ~NcclCommunicator() override {
    nccl::Free(scratch_);
    nccl::Destroy(comm_, stream_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  absl::Status AllReduceSum(absl::Span<float> data) override {
    return Done(nccl::AllReduceSum(comm_, stream_, data.data(), data.size()), "all-reduce");
  }
  absl::Status ReduceScatterSum(absl::Span<const float> in, absl::Span<float> out) override {
    if (in.size() != out.size() * size_) {
      return absl::InvalidArgumentError(absl::StrCat("reduce-scatter: input has ", in.size(),
                                                     " floats, expected ", out.size() * size_));
    }
    return Done(nccl::ReduceScatterSum(comm_, stream_, in.data(), out.data(), out.size()),
                "reduce-scatter");
  }
  absl::Status AllGather(absl::Span<const float> in, absl::Span<float> out) override {
    if (out.size() != in.size() * size_) {
      return absl::InvalidArgumentError(absl::StrCat("all-gather: output has ", out.size(),
                                                     " floats, expected ", in.size() * size_));
    }
    return Done(nccl::AllGather(comm_, stream_, in.data(), out.data(), in.size()), "all-gather");
  }
  absl::Status Broadcast(absl::Span<float> data, int root) override {
    if (root < 0 || root >= size_) {
      return absl::InvalidArgumentError(absl::StrCat("broadcast: root ", root, " of ", size_));
    }
    return Done(nccl::Broadcast(comm_, stream_, data.data(), data.size(), root), "broadcast");
  }
  absl::Status Barrier() override {
    return Done(nccl::AllReduceSum(comm_, stream_, scratch_, 1), "barrier");
  }
  Handle Async(std::function<absl::Status(Communicator&)> op) override {
    return async_.Submit([this, op = std::move(op)] { return op(*this); });
  }

 private:
  absl::Status Done(int enqueued, const char* what) {
    if (absl::Status s = NcclStatus(enqueued, what, rank_); !s.ok()) return s;
    return NcclStatus(nccl::Synchronize(stream_), what, rank_);
  }

  void* comm_;
  void* stream_;
  float* scratch_;
  const int rank_, size_;
  SerialExecutor async_;  // Last: destroyed (joined) first.
};

}  // namespace
#endif  // STRATA_WITH_CUDA

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(const NcclOptions& options) {
#ifdef STRATA_WITH_CUDA
  if (options.size < 1 || options.rank < 0 || options.rank >= options.size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", options.rank, " is not in [0, ", options.size, ")"));
  }
  if (mkdir(options.store_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", options.store_dir, ": ", std::strerror(errno)));
  }
  const std::string path = absl::StrCat(options.store_dir, "/", options.prefix, ".nccl-id");
  char id[nccl::kUniqueIdBytes];
  if (options.rank == 0) {
    if (absl::Status s = NcclStatus(nccl::GetUniqueId(id), "ncclGetUniqueId", 0); !s.ok()) {
      return s;
    }
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(id, sizeof(id));
      if (!out) return absl::InternalError("cannot write " + tmp);
    }
    if (rename(tmp.c_str(), path.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("rename ", tmp, ": ", std::strerror(errno)));
    }
  } else {
    const absl::Time deadline = absl::Now() + options.timeout;
    while (true) {
      std::ifstream in(path, std::ios::binary);
      if (in.read(id, sizeof(id))) break;
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("rank ", options.rank, ": no NCCL id from rank 0 in ", path));
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  void* comm = nullptr;
  void* stream = nullptr;
  if (absl::Status s =
          NcclStatus(nccl::Init(id, options.size, options.rank, options.device, &comm, &stream),
                     "ncclCommInitRank", options.rank);
      !s.ok()) {
    return s;
  }
  float* scratch = nullptr;
  if (absl::Status s = NcclStatus(nccl::Malloc(&scratch, 1), "cudaMalloc", options.rank); !s.ok()) {
    nccl::Destroy(comm, stream);
    return s;
  }
  return std::unique_ptr<Communicator>(
      new NcclCommunicator(comm, stream, scratch, options.rank, options.size));
#else
  (void)options;
  return absl::UnavailableError(
      "the NCCL communicator needs a build with CUDA (bazel build --config=cuda)");
#endif
}

}  // namespace strata
