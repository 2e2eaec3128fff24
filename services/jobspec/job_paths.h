// The storage model of a job: which files a JobSpec may name, checked twice — lexically by the
// coordinator at submit (CheckSpecPaths), and against the real file system by the worker before
// the rank starts (ResolveSpecPaths), so a worker never trusts a path because the coordinator
// passed it on.
//
//   - A job READS (model.checkpoint_path, model.config_path, data.train_paths,
//     data.eval_paths, data.tokenizer_path, checkpoint.resume_from) from an absolute path under
//     one of the cluster's read-only data roots (--data_roots), or from a path relative to its
//     owner's area `<work_dir>/users/<owner>/`, where the owner's own jobs' outputs are
//     (`jobs/<job_id>/checkpoints/...`).
//   - A job WRITES only inside its owner's area: checkpoint.path is relative to it (default
//     `jobs/<job_id>/checkpoints`).
//   - `..` components are refused everywhere; on the worker every path is resolved with its
//     symlinks and must still lie inside the root it was admitted under.
//
// Another user's area is never under a data root (the worker refuses to start when a data root
// and its work dir overlap), so one user's checkpoints and exports cannot be read through
// another user's job.
#ifndef STRATA_SERVICES_JOBSPEC_JOB_PATHS_H_
#define STRATA_SERVICES_JOBSPEC_JOB_PATHS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/strata/v1/job.pb.h"

namespace strata {

inline constexpr size_t kMaxSpecPathBytes = 1024;

// A name that is safe as one path component (users, job ids): 1-63 characters of
// [A-Za-z0-9._-], not "." or "..".
bool IsSafePathComponent(absl::string_view name);

// `path` equals `root` or lies below it, component by component (both lexically normal).
bool IsPathUnder(absl::string_view path, absl::string_view root);

// The owner's area under a worker's work dir; "anonymous" when the coordinator has no users.
std::string OwnerArea(const std::string& work_dir, const std::string& owner);

// Absolute, `..`-free data roots with trailing slashes removed, or INVALID_ARGUMENT naming
// `flag`.
absl::StatusOr<std::vector<std::string>> NormalizeDataRoots(const std::vector<std::string>& roots,
                                                            const char* flag);

// Submit time, without touching the file system: every path field obeys the rules above for
// `data_roots` (normalized). The error names the field (`spec.data.train_paths[0]: ...`).
absl::Status CheckSpecPaths(const v1::JobSpec& spec, const std::vector<std::string>& data_roots);

// What a worker offers a rank, every directory already resolved (realpath).
struct WorkerRoots {
  std::string owner_area;               // Created by the caller.
  std::vector<std::string> data_roots;  // Read-only, resolved.
  // The same roots as configured (NormalizeDataRoots), which spec paths name: a root given as
  // a symlink (/data -> /mnt/nfs/data) admits /data/... and its resolved form.
  std::vector<std::string> data_roots_as_given;
};

// A worker's roots at start-up, each replaced by its realpath: the work dir (created if missing)
// and the data roots (which must exist). A data root that contains the work dir or lies inside
// it is refused: it would expose every user's area to every job.
absl::Status ResolveWorkerDirs(std::string* work_dir, std::vector<std::string>* data_roots);

// On the worker: the spec with every path replaced by its resolved absolute form, after the
// checks of CheckSpecPaths and: an input exists and, symlinks followed, lies under a data root
// or the owner's area; checkpoint.path is created inside the owner's area and, resolved, is
// still inside it. Errors name the field and the path, never anything read from a file.
absl::StatusOr<v1::JobSpec> ResolveSpecPaths(v1::JobSpec spec, const WorkerRoots& roots);

}  // namespace strata

#endif  // STRATA_SERVICES_JOBSPEC_JOB_PATHS_H_
