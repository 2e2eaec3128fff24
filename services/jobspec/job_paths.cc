// See job_paths.h.
#include "services/jobspec/job_paths.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "runtime/base/errno_status.h"
#include "runtime/base/status_macros.h"
#include "services/jobspec/job_spec.h"

namespace strata {
namespace {

enum class Use { kRead, kWrite };

struct PathField {
  std::string field;  // Without the "spec." prefix.
  std::string* value;
  Use use;
};

// Every path a spec names, in a stable order.
std::vector<PathField> PathFields(v1::JobSpec* spec) {
  std::vector<PathField> fields;
  v1::ModelSpec* model = spec->mutable_model();
  if (model->has_checkpoint_path()) {
    fields.push_back({"model.checkpoint_path", model->mutable_checkpoint_path(), Use::kRead});
  }
  if (model->has_config_path()) {
    fields.push_back({"model.config_path", model->mutable_config_path(), Use::kRead});
  }
  v1::DataSpec* data = spec->mutable_data();
  for (int i = 0; i < data->train_paths_size(); ++i) {
    fields.push_back(
        {absl::StrCat("data.train_paths[", i, "]"), data->mutable_train_paths(i), Use::kRead});
  }
  for (int i = 0; i < data->eval_paths_size(); ++i) {
    fields.push_back(
        {absl::StrCat("data.eval_paths[", i, "]"), data->mutable_eval_paths(i), Use::kRead});
  }
  if (!data->tokenizer_path().empty()) {
    fields.push_back({"data.tokenizer_path", data->mutable_tokenizer_path(), Use::kRead});
  }
  if (spec->has_task()) {  // (mutable_task() would add an empty one.)
    v1::TaskSpec* task = spec->mutable_task();
    for (const auto& [field, path] : {std::pair{"task.train_path", task->mutable_train_path()},
                                      {"task.dev_path", task->mutable_dev_path()},
                                      {"task.test_path", task->mutable_test_path()}}) {
      if (!path->empty()) fields.push_back({field, path, Use::kRead});
    }
  }
  v1::CheckpointPolicy* checkpoint = spec->mutable_checkpoint();
  if (!checkpoint->resume_from().empty()) {
    fields.push_back({"checkpoint.resume_from", checkpoint->mutable_resume_from(), Use::kRead});
  }
  if (!checkpoint->path().empty()) {
    fields.push_back({"checkpoint.path", checkpoint->mutable_path(), Use::kWrite});
  }
  return fields;
}

bool IsAbsolute(absl::string_view path) { return absl::StartsWith(path, "/"); }

// Length, NUL bytes and `..` components.
absl::Status CheckLexical(const std::string& field, const std::string& path) {
  if (path.size() > kMaxSpecPathBytes) {
    return SpecFieldError(field, absl::StrCat("longer than ", kMaxSpecPathBytes, " bytes"));
  }
  if (path.find('\0') != std::string::npos) return SpecFieldError(field, "contains a NUL byte");
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") return SpecFieldError(field, absl::StrCat(path, ": '..' is not allowed"));
  }
  return absl::OkStatus();
}

absl::Status CheckOne(const PathField& f, const std::vector<std::string>& data_roots) {
  STRATA_RETURN_IF_ERROR(CheckLexical(f.field, *f.value));
  if (!IsAbsolute(*f.value)) return absl::OkStatus();  // In the owner's area.
  if (f.use == Use::kWrite) {
    return SpecFieldError(f.field, absl::StrCat(*f.value,
                                                ": must be relative (a job writes only inside "
                                                "its owner's area on the worker)"));
  }
  for (const std::string& root : data_roots) {
    if (IsPathUnder(*f.value, root)) return absl::OkStatus();
  }
  return SpecFieldError(f.field, absl::StrCat(*f.value, ": outside the cluster's data roots (",
                                              data_roots.empty() ? "none declared: --data_roots"
                                                                 : absl::StrJoin(data_roots, ", "),
                                              "); relative paths name the owner's own outputs"));
}

// realpath(candidate); errors show `path` (the spec's text).
absl::StatusOr<std::string> RealPath(const std::string& field, const std::string& path,
                                     const std::string& candidate) {
  char resolved[PATH_MAX];
  if (realpath(candidate.c_str(), resolved) == nullptr) {
    const int err = errno;
    return err == ENOENT ? absl::NotFoundError(absl::StrCat("spec.", field, ": ", path,
                                                            " does not exist on this worker"))
                         : absl::PermissionDeniedError(
                               absl::StrCat("spec.", field, ": ", path, ": ", std::strerror(err)));
  }
  return std::string(resolved);
}

// Creates `relative`'s directories beneath `root` one component at a time without following a
// symlink (O_NOFOLLOW), so a link planted in the owner's area cannot make the worker create
// directories elsewhere.
absl::Status MakeDirsBeneath(const std::string& field, const std::string& root,
                             const std::string& relative) {
  int dir = open(root.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (dir < 0) return ErrnoStatus(errno, absl::StrCat("open ", root));
  absl::Status status;
  for (absl::string_view part : absl::StrSplit(relative, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    const std::string name(part);
    if (mkdirat(dir, name.c_str(), 0755) != 0 && errno != EEXIST) {
      status = ErrnoStatus(errno, absl::StrCat("spec.", field, ": mkdir ", relative));
      break;
    }
    const int next = openat(dir, name.c_str(), O_DIRECTORY | O_NOFOLLOW | O_RDONLY | O_CLOEXEC);
    if (next < 0) {
      status = absl::PermissionDeniedError(
          absl::StrCat("spec.", field, ": ", relative,
                       " resolves (through a symlink) outside the owner's area"));
      break;
    }
    close(dir);
    dir = next;
  }
  close(dir);
  return status;
}

}  // namespace

bool IsPathUnder(absl::string_view path, absl::string_view root) {
  if (root == "/") return IsAbsolute(path);
  return path == root || (absl::StartsWith(path, root) && path[root.size()] == '/');
}

bool IsSafePathComponent(absl::string_view name) {
  if (name.empty() || name.size() > 63 || name == "." || name == "..") return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

std::string OwnerArea(const std::string& work_dir, const std::string& owner) {
  return absl::StrCat(work_dir, "/users/", owner.empty() ? "anonymous" : owner);
}

absl::StatusOr<std::vector<std::string>> NormalizeDataRoots(const std::vector<std::string>& roots,
                                                            const char* flag) {
  std::vector<std::string> out;
  for (std::string root : roots) {
    if (root.empty()) continue;
    if (!IsAbsolute(root)) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": ", root, " is not absolute"));
    }
    if (absl::Status s = CheckLexical(flag, root); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": ", root, ": '..' is not allowed"));
    }
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    out.push_back(std::move(root));
  }
  return out;
}

absl::Status CheckSpecPaths(const v1::JobSpec& spec, const std::vector<std::string>& data_roots) {
  v1::JobSpec copy = spec;
  for (const PathField& f : PathFields(&copy)) {
    STRATA_RETURN_IF_ERROR(CheckOne(f, data_roots));
  }
  return absl::OkStatus();
}

absl::Status ResolveWorkerDirs(std::string* work_dir, std::vector<std::string>* data_roots) {
  if (work_dir->empty()) return absl::InvalidArgumentError("--work_dir: must not be empty");
  if (mkdir(work_dir->c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, absl::StrCat("--work_dir: mkdir ", *work_dir));
  }
  char resolved[PATH_MAX];
  if (realpath(work_dir->c_str(), resolved) == nullptr) {
    return ErrnoStatus(errno, absl::StrCat("--work_dir: ", *work_dir));
  }
  *work_dir = resolved;
  STRATA_ASSIGN_OR_RETURN(std::vector<std::string> roots,
                          NormalizeDataRoots(*data_roots, "--data_roots"));
  for (std::string& root : roots) {
    if (realpath(root.c_str(), resolved) == nullptr) {
      return ErrnoStatus(errno, absl::StrCat("--data_roots: ", root));
    }
    root = resolved;
    if (IsPathUnder(*work_dir, root) || IsPathUnder(root, *work_dir)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--data_roots: ", root, " overlaps --work_dir ", *work_dir,
                       " (jobs could read other users' outputs through it)"));
    }
  }
  *data_roots = std::move(roots);
  return absl::OkStatus();
}

absl::StatusOr<v1::JobSpec> ResolveSpecPaths(v1::JobSpec spec, const WorkerRoots& roots) {
  std::vector<std::string> admitted = roots.data_roots_as_given;
  admitted.insert(admitted.end(), roots.data_roots.begin(), roots.data_roots.end());
  for (const PathField& f : PathFields(&spec)) {
    STRATA_RETURN_IF_ERROR(CheckOne(f, admitted));
    const std::string candidate =
        IsAbsolute(*f.value) ? *f.value : absl::StrCat(roots.owner_area, "/", *f.value);
    if (f.use == Use::kWrite) {
      STRATA_RETURN_IF_ERROR(MakeDirsBeneath(f.field, roots.owner_area, *f.value));
    }
    STRATA_ASSIGN_OR_RETURN(std::string resolved, RealPath(f.field, *f.value, candidate));
    bool inside = IsPathUnder(resolved, roots.owner_area);
    if (f.use == Use::kRead) {
      for (const std::string& root : roots.data_roots)
        inside = inside || IsPathUnder(resolved, root);
    }
    if (!inside) {
      return absl::PermissionDeniedError(absl::StrCat(
          "spec.", f.field, ": ", *f.value, " resolves (through a symlink) outside the ",
          f.use == Use::kWrite ? "owner's area" : "data roots and the owner's area"));
    }
    *f.value = std::move(resolved);
  }
  return spec;
}

}  // namespace strata
