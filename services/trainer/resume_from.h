// checkpoint.resume_from: a run starts from a checkpoint another run wrote (a `ckpt-<step>`
// directory with its MANIFEST.json) by committing a verified copy of it into its own checkpoint
// root before the trainer resumes; the trainer then continues from that checkpoint's step,
// weights, optimizer state and data position exactly as after its own restart. A root that
// already holds a checkpoint (a restarted attempt) is left alone: the run's own progress wins.
#ifndef STRATA_SERVICES_TRAINER_RESUME_FROM_H_
#define STRATA_SERVICES_TRAINER_RESUME_FROM_H_

#include <functional>
#include <string>

#include "absl/status/status.h"

namespace strata {

// Nothing when `source` is empty. INVALID_ARGUMENT naming `source` when it is not a checkpoint
// that verifies, or when `root` is empty (the run keeps no checkpoints to resume into).
absl::Status SeedFromCheckpoint(const std::string& source, const std::string& root, int keep_last,
                                const std::function<void(const std::string&)>& log);

}  // namespace strata

#endif  // STRATA_SERVICES_TRAINER_RESUME_FROM_H_
