// Collectives between the ranks of a job: all-reduce, reduce-scatter, all-gather, broadcast
// and barrier over fp32 buffers, synchronous or asynchronous (a completion handle). Ranks meet
// through a rendezvous key-value store; each collective is deterministic: the same inputs give
// the same bits on every rank and every run (fixed reduction order), so training across ranks is
// reproducible. A rank that dies makes the others' collectives fail within the timeout with an
// error naming the operation, never hang. (Creating a Gloo communicator sets SIGPIPE to ignored
// when it is at its default, so a write to a dead peer is an error rather than a kill.)
//
// Implementations: Gloo over TCP (CPU, CreateGlooCommunicator) and NCCL (GPU buffers, CUDA
// builds, CreateNcclCommunicator).
#ifndef STRATA_RUNTIME_DIST_COMMUNICATOR_H_
#define STRATA_RUNTIME_DIST_COMMUNICATOR_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace strata {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // data = elementwise sum over ranks (in place).
  virtual absl::Status AllReduceSum(absl::Span<float> data) = 0;
  // `in` holds size() segments of out.size() floats; out = the sum over ranks of segment rank().
  virtual absl::Status ReduceScatterSum(absl::Span<const float> in, absl::Span<float> out) = 0;
  // out (size() * in.size() floats): rank r's `in` at [r * n, (r + 1) * n).
  virtual absl::Status AllGather(absl::Span<const float> in, absl::Span<float> out) = 0;
  // data = root's data on every rank.
  virtual absl::Status Broadcast(absl::Span<float> data, int root) = 0;
  virtual absl::Status Barrier() = 0;

  // An asynchronous collective: operations run in submission order on one background thread
  // (so every rank issues them in the same order); Wait returns the operation's status. The
  // buffers must stay valid until then.
  class Handle {
   public:
    Handle() = default;
    explicit Handle(std::shared_ptr<std::function<absl::Status()>> wait) : wait_(std::move(wait)) {}
    absl::Status Wait() { return wait_ == nullptr ? absl::OkStatus() : (*wait_)(); }

   private:
    std::shared_ptr<std::function<absl::Status()>> wait_;
  };
  virtual Handle Async(std::function<absl::Status(Communicator&)> op) = 0;
};

// The key-value store ranks meet through (Gloo's rendezvous: each rank publishes its address
// and reads its peers'). Implementations: files under a shared directory (GlooOptions::store_dir)
// and the coordinator's WorkerService.StoreSet/StoreGet (services/common/coordinator_store.h).
class KeyValueStore {
 public:
  virtual ~KeyValueStore() = default;
  virtual absl::Status Set(const std::string& key, const std::string& value) = 0;
  // The values of `keys`, waiting up to `timeout` until every one is set.
  virtual absl::StatusOr<std::vector<std::string>> Get(const std::vector<std::string>& keys,
                                                       absl::Duration timeout) = 0;
};

struct GlooOptions {
  int rank = 0;
  int size = 1;
  // Rendezvous through `store` (not owned; it must outlive the rendezvous) or, when null,
  // through files under `store_dir` (shared by the ranks: local runs and tests).
  KeyValueStore* store = nullptr;
  std::string store_dir;
  std::string prefix = "strata";               // Keys of one job attempt.
  std::string hostname = "127.0.0.1";          // The address this rank listens on.
  absl::Duration timeout = absl::Seconds(30);  // Connect and per-collective.
};

absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(const GlooOptions& options);

struct NcclOptions {
  int rank = 0;
  int size = 1;
  int device = 0;         // CUDA device of this rank; the spans given to it are its memory.
  std::string store_dir;  // Rank 0 publishes the NCCL id here; the others read it.
  std::string prefix = "strata";
  absl::Duration timeout = absl::Seconds(30);  // Waiting for the id.
};

// The NCCL implementation (CUDA builds; UNAVAILABLE otherwise).
absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(const NcclOptions& options);

}  // namespace strata

#endif  // STRATA_RUNTIME_DIST_COMMUNICATOR_H_
