// See checkpoint.h.
#include "storage/checkpoint.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/base/errno_status.h"
#include "storage/atomic_file.h"
#include "xxhash.h"

namespace strata {
namespace {

constexpr char kManifest[] = "MANIFEST.json";
constexpr char kOwnedMarker[] = ".strata-checkpoints";

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::Status RemoveTree(const std::string& path) {
  for (const std::string& name : ListDir(path)) unlink(absl::StrCat(path, "/", name).c_str());
  if (rmdir(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("rmdir ", path));
  }
  return absl::OkStatus();
}

// Size and XXH3-64 of a file, streaming.
absl::Status HashFile(const std::string& path, int64_t* bytes, uint64_t* hash) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  std::vector<char> buf(1 << 20);
  *bytes = 0;
  absl::Status status;
  while (true) {
    const ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      status = ErrnoStatus(errno, absl::StrCat("read ", path));
      break;
    }
    if (n == 0) break;
    XXH3_64bits_update(state, buf.data(), static_cast<size_t>(n));
    *bytes += n;
  }
  *hash = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  close(fd);
  return status;
}

absl::Status SyncFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  return rc == 0 ? absl::OkStatus() : ErrnoStatus(err, absl::StrCat("fsync ", path));
}

bool ParseStep(const std::string& name, int64_t* step) {
  return absl::StartsWith(name, "ckpt-") && !absl::EndsWith(name, ".tmp") &&
         absl::SimpleAtoi(name.substr(5), step);
}

}  // namespace

absl::StatusOr<std::unique_ptr<CheckpointManager>> CheckpointManager::Create(Options options) {
  if (options.root.empty()) return absl::InvalidArgumentError("checkpoint root is empty");
  if (options.keep_last < 1) return absl::InvalidArgumentError("keep_last must be at least 1");
  if (absl::Status s = MakeDirs(options.root); !s.ok()) return s;
  // Cleanup and retention delete inside the root: only in a directory this class made (or
  // found empty), never in one that already held something else.
  std::vector<std::string> names = ListDir(options.root);
  const std::string marker = absl::StrCat(options.root, "/", kOwnedMarker);
  if (std::find(names.begin(), names.end(), kOwnedMarker) == names.end()) {
    if (!names.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          options.root, " is not empty and holds no ", kOwnedMarker,
          ": not a Strata checkpoint directory, so its files are left alone (name an empty or "
          "new directory)"));
    }
    const int fd = open(marker.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoStatus(errno, absl::StrCat("create ", marker));
    close(fd);
    if (absl::Status s = SyncParentDirectory(marker); !s.ok()) return s;
  }
  for (const std::string& name : names) {
    if (absl::EndsWith(name, ".tmp")) {
      if (absl::Status s = RemoveTree(absl::StrCat(options.root, "/", name)); !s.ok()) return s;
    }
  }
  return std::unique_ptr<CheckpointManager>(new CheckpointManager(std::move(options)));
}

absl::StatusOr<CheckpointManager::Writer> CheckpointManager::Begin(int64_t step) {
  const std::string name = absl::StrFormat("ckpt-%010d", step);
  const std::string final_dir = absl::StrCat(options_.root, "/", name);
  const std::string temp_dir = final_dir + ".tmp";
  if (absl::Status s = RemoveTree(temp_dir); !s.ok()) return s;
  if (mkdir(temp_dir.c_str(), 0755) != 0)
    return ErrnoStatus(errno, absl::StrCat("mkdir ", temp_dir));
  return Writer(this, step, temp_dir, final_dir);
}

absl::Status CheckpointManager::Writer::Commit(const nlohmann::json& position) {
  nlohmann::json manifest;
  manifest["step"] = step_;
  manifest["position"] = position;
  manifest["files"] = nlohmann::json::array();
  for (const std::string& name : ListDir(temp_dir_)) {
    if (name == kManifest) continue;
    const std::string path = absl::StrCat(temp_dir_, "/", name);
    int64_t bytes = 0;
    uint64_t hash = 0;
    if (absl::Status s = HashFile(path, &bytes, &hash); !s.ok()) return s;
    if (absl::Status s = SyncFile(path); !s.ok()) return s;
    manifest["files"].push_back(
        {{"name", name}, {"bytes", bytes}, {"xxh3", absl::StrFormat("%016x", hash)}});
  }
  if (absl::Status s = WriteStringToFileAtomically(absl::StrCat(temp_dir_, "/", kManifest),
                                                   manifest.dump(2) + "\n");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = RemoveTree(final_dir_); !s.ok()) return s;
  if (rename(temp_dir_.c_str(), final_dir_.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename ", temp_dir_, " to ", final_dir_));
  }
  if (absl::Status s = SyncParentDirectory(final_dir_); !s.ok()) return s;
  return manager_->ApplyRetention();
}

std::vector<int64_t> CheckpointManager::Steps() const {
  std::vector<int64_t> steps;
  for (const std::string& name : ListDir(options_.root)) {
    int64_t step = 0;
    if (ParseStep(name, &step)) steps.push_back(step);
  }
  std::sort(steps.rbegin(), steps.rend());
  return steps;
}

absl::Status CheckpointManager::ApplyRetention() {
  const std::vector<int64_t> steps = Steps();
  for (size_t i = options_.keep_last; i < steps.size(); ++i) {
    if (absl::Status s =
            RemoveTree(absl::StrCat(options_.root, "/", absl::StrFormat("ckpt-%010d", steps[i])));
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CheckpointInfoOnDisk> CheckpointManager::Verify(const std::string& dir) {
  std::ifstream in(absl::StrCat(dir, "/", kManifest));
  if (!in) return absl::DataLossError(absl::StrCat(dir, ": no ", kManifest));
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json manifest = nlohmann::json::parse(text.str(), nullptr, false);
  if (manifest.is_discarded() || !manifest.contains("step") || !manifest.contains("files") ||
      !manifest["files"].is_array()) {
    return absl::DataLossError(absl::StrCat(dir, "/", kManifest, " is malformed"));
  }
  CheckpointInfoOnDisk info;
  info.step = manifest["step"].get<int64_t>();
  info.dir = dir;
  info.position = manifest.value("position", nlohmann::json());
  for (const auto& f : manifest["files"]) {
    const std::string name = f.value("name", "");
    if (name.empty() || absl::StrContains(name, "/")) {
      return absl::DataLossError(absl::StrCat(dir, "/", kManifest, ": bad file name"));
    }
    const std::string path = absl::StrCat(dir, "/", name);
    int64_t bytes = 0;
    uint64_t hash = 0;
    if (absl::Status s = HashFile(path, &bytes, &hash); !s.ok()) {
      return absl::DataLossError(absl::StrCat(path, " is missing: ", s.message()));
    }
    if (bytes != f.value("bytes", int64_t{-1})) {
      return absl::DataLossError(absl::StrCat(path, " has ", bytes, " bytes, the manifest says ",
                                              f.value("bytes", int64_t{-1}), " (truncated?)"));
    }
    if (absl::StrFormat("%016x", hash) != f.value("xxh3", "")) {
      return absl::DataLossError(absl::StrCat(path, " fails its checksum (corrupted)"));
    }
    info.files.push_back(name);
  }
  return info;
}

absl::StatusOr<CheckpointInfoOnDisk> CheckpointManager::LatestValid(
    std::vector<std::string>* problems) const {
  for (int64_t step : Steps()) {
    absl::StatusOr<CheckpointInfoOnDisk> info =
        Verify(absl::StrCat(options_.root, "/", absl::StrFormat("ckpt-%010d", step)));
    if (info.ok()) return info;
    if (problems != nullptr) problems->push_back(std::string(info.status().message()));
  }
  return absl::NotFoundError(absl::StrCat("no valid checkpoint in ", options_.root));
}

}  // namespace strata
