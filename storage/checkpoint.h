// Crash-safe checkpoints: each checkpoint is a directory `ckpt-<step>` holding the caller's files
// and a MANIFEST.json written last, which lists every file with its size and XXH3-64 checksum and
// records the training position (step, data position, step-log position — any JSON the caller
// gives). The commit protocol: files are written into `ckpt-<step>.tmp/` and fsynced, the
// manifest is written atomically, the directory is renamed into place, and the root directory is
// fsynced. Retention keeps the newest `keep_last`.
//
// LatestValid() returns the newest checkpoint whose manifest parses and whose files all exist
// with the recorded sizes and checksums; truncated or corrupted checkpoints are skipped and
// reported, so training resumes from the previous good one.
#ifndef STRATA_STORAGE_CHECKPOINT_H_
#define STRATA_STORAGE_CHECKPOINT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace strata {

struct CheckpointInfoOnDisk {
  int64_t step = 0;
  std::string dir;
  nlohmann::json position;  // As given to Commit.
  std::vector<std::string> files;
};

class CheckpointManager {
 public:
  struct Options {
    std::string root;
    int keep_last = 3;
  };

  // Creates `root` if needed and removes leftovers of interrupted commits (`*.tmp`). A root
  // this class manages holds a `.strata-checkpoints` marker, written when the root is new or
  // empty; a non-empty root without it is refused (FAILED_PRECONDITION), so cleanup and
  // retention never delete from a directory Strata did not make.
  static absl::StatusOr<std::unique_ptr<CheckpointManager>> Create(Options options);

  // A checkpoint being written: put files into dir(), then Commit.
  class Writer {
   public:
    const std::string& dir() const { return temp_dir_; }
    // Where the checkpoint is once committed.
    const std::string& final_dir() const { return final_dir_; }
    // Records the files now in dir() (all regular files), fsyncs them, writes the manifest with
    // `position`, and moves the checkpoint into place. Then applies retention.
    absl::Status Commit(const nlohmann::json& position);

   private:
    friend class CheckpointManager;
    Writer(CheckpointManager* manager, int64_t step, std::string temp_dir, std::string final_dir)
        : manager_(manager),
          step_(step),
          temp_dir_(std::move(temp_dir)),
          final_dir_(std::move(final_dir)) {}
    CheckpointManager* manager_;
    int64_t step_;
    std::string temp_dir_, final_dir_;
  };

  absl::StatusOr<Writer> Begin(int64_t step);

  // The newest valid checkpoint, or kNotFound. `problems` (if not null) receives one line per
  // checkpoint that was skipped and why.
  absl::StatusOr<CheckpointInfoOnDisk> LatestValid(std::vector<std::string>* problems) const;

  // Verifies one checkpoint directory against its manifest.
  static absl::StatusOr<CheckpointInfoOnDisk> Verify(const std::string& dir);

  // Steps of the committed checkpoints (valid or not), newest first.
  std::vector<int64_t> Steps() const;
  const std::string& root() const { return options_.root; }

 private:
  explicit CheckpointManager(Options options) : options_(std::move(options)) {}
  absl::Status ApplyRetention();
  Options options_;
};

}  // namespace strata

#endif  // STRATA_STORAGE_CHECKPOINT_H_
