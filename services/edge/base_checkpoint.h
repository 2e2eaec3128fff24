// A federated job's θ0 when it is a checkpoint every client holds
// (federated.base_checkpoint_sha256, docs/federated.md): the digest that names it, and loading a
// client's copy only when it is the job's. The digest is the sha256 of the directory's .safetensors
// files concatenated in name order — for a one-file checkpoint, `sha256sum DIR/model.safetensors` —
// so it covers every weight bit the replay starts from; the architecture is the job's config_json,
// which loading checks every tensor's shape against.
#ifndef STRATA_SERVICES_EDGE_BASE_CHECKPOINT_H_
#define STRATA_SERVICES_EDGE_BASE_CHECKPOINT_H_

#include <string>

#include "absl/status/statusor.h"
#include "runtime/model/transformer.h"

namespace strata {

// Lowercase hex; NOT_FOUND when `dir` has no .safetensors file, errors naming the file.
absl::StatusOr<std::string> CheckpointSha256(const std::string& dir);

// Loads `dir`'s weights into `model` when they hash to `sha256`; FAILED_PRECONDITION naming both
// digests otherwise (a client with another checkpoint would replay the history onto other
// bits).
absl::Status LoadBaseCheckpoint(const std::string& dir, const std::string& sha256,
                                Transformer& model);

}  // namespace strata

#endif  // STRATA_SERVICES_EDGE_BASE_CHECKPOINT_H_
