// The coordinator's durable job table: every job (spec, state, placements, progress) as a
// serialized v1.Job row in an embedded SQLite database under the coordinator's data directory.
// Writes are transactions in WAL mode with synchronous=FULL, so a job the API acknowledged
// survives a crash or kill -9 of the coordinator; on restart the non-terminal jobs are read back
// and recovered. Rows keep the submission order (a monotonically increasing sequence number),
// which is the FIFO order within a priority.
#ifndef STRATA_SERVICES_COORDINATOR_JOB_STORE_H_
#define STRATA_SERVICES_COORDINATOR_JOB_STORE_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proto/strata/v1/common.pb.h"
#include "proto/strata/v1/federated_service.pb.h"
#include "proto/strata/v1/job.pb.h"

struct sqlite3;

namespace strata {

// A job as stored: the API object plus what only the coordinator needs.
struct StoredJob {
  int64_t sequence = 0;    // Submission order (1, 2, ...).
  std::string owner;       // Who submitted it (the authenticated user).
  std::string request_id;  // The client's idempotency key; may be empty.
  v1::Job job;
};

// A federated round as stored: its record and, once it closed, the history entry it appended.
struct StoredRound {
  v1::RoundInfo info;
  bool has_entry = false;
  v1::HistoryEntry entry;
};

class JobStore {
 public:
  // Opens (creating when missing) `data_dir`/jobs.db. A file that is not a Strata job database
  // (or is damaged) is an error naming the file, never overwritten.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& data_dir);
  ~JobStore();

  // Inserts a new job (its id must be unique) and returns it with its sequence number. When
  // `request_id` is not empty and was used before by the same owner, nothing is inserted and
  // the earlier job is returned instead (idempotent submit).
  absl::StatusOr<StoredJob> Insert(StoredJob job);
  // Replaces the stored row of job `job.job.id` (which must exist).
  absl::Status Update(const StoredJob& job);
  absl::StatusOr<StoredJob> Get(const std::string& job_id);
  // Every job, in submission order.
  absl::StatusOr<std::vector<StoredJob>> All();

  // The ZO step log of a job (one row per step; a step already stored is kept as it is — the
  // same step always has the same record). Returns the last step of the gap-free log from 1.
  absl::StatusOr<int64_t> AppendSteps(const std::string& job_id,
                                      const std::vector<v1::ZoStepRecord>& records);
  // Steps 1..N of the gap-free log, in order.
  absl::StatusOr<std::vector<v1::ZoStepRecord>> Steps(const std::string& job_id);

  // Federated rounds: inserts or replaces round `info.round()` of the job (with its history
  // entry once closed), in one transaction; and every stored round, in round order.
  absl::Status PutRound(const std::string& job_id, const v1::RoundInfo& info,
                        const v1::HistoryEntry* entry);
  absl::StatusOr<std::vector<StoredRound>> Rounds(const std::string& job_id);

  // Workers an operator cordoned (no new ranks are placed on them), by name; kept across
  // coordinator restarts.
  absl::Status SetCordoned(const std::string& worker, bool cordoned);
  absl::StatusOr<std::set<std::string>> Cordoned();

  const std::string& path() const { return path_; }

 private:
  JobStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  // Checks the file is ours (or new), then sets WAL + synchronous=FULL and the schema.
  absl::Status Initialize();
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Error(const char* what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  const std::string path_;
};

}  // namespace strata

#endif  // STRATA_SERVICES_COORDINATOR_JOB_STORE_H_
