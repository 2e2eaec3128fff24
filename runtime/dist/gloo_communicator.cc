// The Gloo (TCP) Communicator: ranks meet through a file store (gloo::rendezvous::FileStore
// under a shared directory, keys under a per-attempt prefix), connect a full mesh, and run
// Gloo's ring algorithms, whose reduction order is fixed by the ranks — deterministic results.
// Gloo reports failures as exceptions; they become statuses naming the operation and rank.
#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/dist/communicator.h"
#include "runtime/dist/serial_executor.h"

namespace strata {
namespace {

class GlooCommunicator : public Communicator {
 public:
  GlooCommunicator(std::shared_ptr<gloo::rendezvous::Context> context, int rank, int size,
                   std::chrono::milliseconds timeout)
      : context_(std::move(context)), rank_(rank), size_(size), timeout_(timeout) {}

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  absl::Status AllReduceSum(absl::Span<float> data) override {
    if (size_ == 1 || data.empty()) return absl::OkStatus();
    return Run("all-reduce", [&] {
      gloo::AllreduceOptions opts(context_);
      opts.setOutput(data.data(), data.size());
      opts.setAlgorithm(gloo::AllreduceOptions::Algorithm::RING);
      opts.setReduceFunction(
          static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<float>));
      opts.setTimeout(timeout_);
      gloo::allreduce(opts);
    });
  }

  absl::Status ReduceScatterSum(absl::Span<const float> in, absl::Span<float> out) override {
    const size_t n = out.size();
    if (in.size() != n * size_) {
      return absl::InvalidArgumentError(
          absl::StrCat("reduce-scatter: input has ", in.size(), " floats, expected ", n * size_));
    }
    // All-reduce of the whole input, then this rank's segment: the same fixed ring order as
    // AllReduceSum (so a stage-2 gradient equals the stage-0 one bit for bit) at twice the
    // traffic of a true reduce-scatter.
    std::vector<float> sum(in.begin(), in.end());
    if (absl::Status s = AllReduceSum(absl::MakeSpan(sum)); !s.ok()) return s;
    std::memcpy(out.data(), sum.data() + rank_ * n, n * sizeof(float));
    return absl::OkStatus();
  }

  absl::Status AllGather(absl::Span<const float> in, absl::Span<float> out) override {
    if (out.size() != in.size() * size_) {
      return absl::InvalidArgumentError(absl::StrCat("all-gather: output has ", out.size(),
                                                     " floats, expected ", in.size() * size_));
    }
    if (size_ == 1) {
      std::memcpy(out.data(), in.data(), in.size() * sizeof(float));
      return absl::OkStatus();
    }
    return Run("all-gather", [&] {
      gloo::AllgatherOptions opts(context_);
      opts.setInput(const_cast<float*>(in.data()), in.size());
      opts.setOutput(out.data(), out.size());
      opts.setTimeout(timeout_);
      gloo::allgather(opts);
    });
  }

  absl::Status Broadcast(absl::Span<float> data, int root) override {
    if (root < 0 || root >= size_) {
      return absl::InvalidArgumentError(absl::StrCat("broadcast: root ", root, " of ", size_));
    }
    if (size_ == 1 || data.empty()) return absl::OkStatus();
    return Run("broadcast", [&] {
      gloo::BroadcastOptions opts(context_);
      if (rank_ == root) opts.setInput(data.data(), data.size());
      opts.setOutput(data.data(), data.size());
      opts.setRoot(root);
      opts.setTimeout(timeout_);
      gloo::broadcast(opts);
    });
  }

  absl::Status Barrier() override {
    if (size_ == 1) return absl::OkStatus();
    return Run("barrier", [&] {
      gloo::BarrierOptions opts(context_);
      opts.setTimeout(timeout_);
      gloo::barrier(opts);
    });
  }

  Handle Async(std::function<absl::Status(Communicator&)> op) override {
    return async_.Submit([this, op = std::move(op)] { return op(*this); });
  }

 private:
  template <typename Fn>
  absl::Status Run(const char* what, Fn fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat(what, " failed on rank ", rank_, " of ", size_,
                                                 " (a peer died or timed out?): ", e.what()));
    }
    return absl::OkStatus();
  }

  std::shared_ptr<gloo::rendezvous::Context> context_;
  const int rank_, size_;
  const std::chrono::milliseconds timeout_;
  SerialExecutor async_;  // Last: destroyed (joined) first.
};

// Gloo's Store over a KeyValueStore; failures become the exceptions Gloo expects.
class KeyValueGlooStore : public gloo::rendezvous::Store {
 public:
  KeyValueGlooStore(KeyValueStore* store, std::chrono::milliseconds timeout)
      : store_(store), timeout_(timeout) {}
  void set(const std::string& key, const std::vector<char>& data) override {
    Check(store_->Set(key, std::string(data.begin(), data.end())));
  }
  std::vector<char> get(const std::string& key) override {
    absl::StatusOr<std::vector<std::string>> values =
        store_->Get({key}, absl::Milliseconds(timeout_.count()));
    Check(values.status());
    return std::vector<char>(values->at(0).begin(), values->at(0).end());
  }
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override {
    Check(store_->Get(keys, absl::Milliseconds(timeout.count())).status());
  }

 private:
  static void Check(const absl::Status& status) {
    if (!status.ok()) throw std::runtime_error(status.ToString());
  }
  KeyValueStore* store_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(const GlooOptions& options) {
  if (options.size < 1 || options.rank < 0 || options.rank >= options.size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", options.rank, " is not in [0, ", options.size, ")"));
  }
  if (options.store == nullptr && options.store_dir.empty()) {
    return absl::InvalidArgumentError("a store or a store_dir is required");
  }
  // mkdir -p: the store may be a new directory under a shared path.
  for (size_t slash = options.store_dir.find('/', 1); options.store == nullptr;
       slash = options.store_dir.find('/', slash + 1)) {
    const std::string prefix = options.store_dir.substr(0, slash);
    if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create ", prefix, ": ", std::strerror(errno)));
    }
    if (slash == std::string::npos) break;
  }
  // A peer that dies mid-collective must give this rank an error, not a SIGPIPE that kills it.
  if (struct sigaction current;
      sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    signal(SIGPIPE, SIG_IGN);
  }
  const auto timeout = std::chrono::milliseconds(absl::ToInt64Milliseconds(options.timeout));
  try {
    gloo::transport::tcp::attr attr;
    attr.hostname = options.hostname;
    auto device = gloo::transport::tcp::CreateDevice(attr);
    std::unique_ptr<gloo::rendezvous::Store> base;
    if (options.store != nullptr) {
      base = std::make_unique<KeyValueGlooStore>(options.store, timeout);
    } else {
      base = std::make_unique<gloo::rendezvous::FileStore>(options.store_dir);
    }
    gloo::rendezvous::PrefixStore store(options.prefix, *base);
    auto context = std::make_shared<gloo::rendezvous::Context>(options.rank, options.size);
    context->setTimeout(timeout);
    context->connectFullMesh(store, device);
    return std::unique_ptr<Communicator>(
        new GlooCommunicator(std::move(context), options.rank, options.size, timeout));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(
        "rank ", options.rank, " of ", options.size, " could not join ", options.prefix,
        " through ", options.store != nullptr ? "the store" : options.store_dir, ": ", e.what()));
  }
}

}  // namespace strata
