// See job_store.h.
#include "services/coordinator/job_store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"

namespace strata {
namespace {

constexpr int kApplicationId = 0x53545241;  // "STRA": marks the file as a Strata job database.

// A prepared statement, finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  void Bind(int index, const std::string& text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  void BindBlob(int index, const std::string& bytes) {
    sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  }
  std::string Column(int index) {
    const void* data = sqlite3_column_blob(stmt_, index);
    const int size = sqlite3_column_bytes(stmt_, index);
    return data == nullptr ? std::string() : std::string(static_cast<const char*>(data), size);
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

constexpr char kColumns[] = "seq, owner, request_id, job";

}  // namespace

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& data_dir) {
  if (mkdir(data_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create data directory ", data_dir, ": ", std::strerror(errno)));
  }
  const std::string path = data_dir + "/jobs.db";
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    const std::string message = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::FailedPreconditionError(absl::StrCat("cannot open ", path, ": ", message));
  }
  std::unique_ptr<JobStore> store(new JobStore(db, path));
  if (absl::Status status = store->Initialize(); !status.ok()) return status;
  // Read every row once: a damaged row is reported now, not when a client asks for it.
  if (absl::StatusOr<std::vector<StoredJob>> all = store->All(); !all.ok()) return all.status();
  return store;
}

absl::Status JobStore::Initialize() {
  absl::MutexLock lock(&mu_);
  sqlite3_busy_timeout(db_, 5000);
  // Identify the file before changing it: a foreign or damaged database is left untouched.
  int id = 0;
  bool empty = false;
  {
    Statement app_id(db_, "PRAGMA application_id");
    if (!app_id.ok() || sqlite3_step(app_id.get()) != SQLITE_ROW) {
      return absl::DataLossError(
          absl::StrCat(path_, " is not a Strata job database (", sqlite3_errmsg(db_), ")"));
    }
    id = sqlite3_column_int(app_id.get(), 0);
    Statement tables(db_, "SELECT count(*) FROM sqlite_master");
    if (!tables.ok() || sqlite3_step(tables.get()) != SQLITE_ROW) return Error("read schema");
    empty = sqlite3_column_int(tables.get(), 0) == 0;
  }  // Statements finalized: no read transaction stays open.
  if (id != kApplicationId && !(id == 0 && empty)) {
    return absl::DataLossError(absl::StrCat(path_, " is not a Strata job database (application_id ",
                                            id, "); move it aside"));
  }
  for (const std::string& sql :
       {std::string("PRAGMA journal_mode=WAL"), std::string("PRAGMA synchronous=FULL"),
        absl::StrCat("PRAGMA application_id=", kApplicationId)}) {
    if (absl::Status status = Exec(sql.c_str()); !status.ok()) return status;
  }
  return Exec(
      "CREATE TABLE IF NOT EXISTS jobs ("
      "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
      "  id TEXT NOT NULL UNIQUE,"
      "  owner TEXT NOT NULL,"
      "  request_id TEXT NOT NULL,"
      "  job BLOB NOT NULL);"
      "CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_request ON jobs(owner, request_id) "
      "  WHERE request_id <> '';"
      "CREATE TABLE IF NOT EXISTS step_log ("
      "  job_id TEXT NOT NULL,"
      "  step INTEGER NOT NULL,"
      "  record BLOB NOT NULL,"
      "  PRIMARY KEY (job_id, step)) WITHOUT ROWID;"
      "CREATE TABLE IF NOT EXISTS fed_rounds ("
      "  job_id TEXT NOT NULL,"
      "  round INTEGER NOT NULL,"
      "  info BLOB NOT NULL,"
      "  entry BLOB,"
      "  PRIMARY KEY (job_id, round)) WITHOUT ROWID;"
      "CREATE TABLE IF NOT EXISTS cordoned_workers (name TEXT PRIMARY KEY) WITHOUT ROWID;");
}

JobStore::~JobStore() {
  absl::MutexLock lock(&mu_);
  sqlite3_close(db_);
}

absl::Status JobStore::Exec(const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    absl::Status status = absl::InternalError(
        absl::StrCat(path_, ": ", message != nullptr ? message : "error", " (in: ", sql, ")"));
    sqlite3_free(message);
    return status;
  }
  return absl::OkStatus();
}

absl::Status JobStore::Error(const char* what) {
  return absl::InternalError(absl::StrCat(path_, ": ", what, ": ", sqlite3_errmsg(db_)));
}

namespace {

absl::StatusOr<StoredJob> ReadRow(Statement& row, const std::string& path) {
  StoredJob job;
  job.sequence = sqlite3_column_int64(row.get(), 0);
  job.owner = row.Column(1);
  job.request_id = row.Column(2);
  if (!job.job.ParseFromString(row.Column(3))) {
    return absl::DataLossError(
        absl::StrCat(path, ": job row ", job.sequence, " does not parse as strata.v1.Job"));
  }
  return job;
}

}  // namespace

absl::StatusOr<StoredJob> JobStore::Insert(StoredJob job) {
  absl::MutexLock lock(&mu_);
  if (!job.request_id.empty()) {
    Statement find(
        db_, absl::StrCat("SELECT ", kColumns, " FROM jobs WHERE owner = ?1 AND request_id = ?2")
                 .c_str());
    find.Bind(1, job.owner);
    find.Bind(2, job.request_id);
    const int rc = sqlite3_step(find.get());
    if (rc == SQLITE_ROW) return ReadRow(find, path_);
    if (rc != SQLITE_DONE) return Error("look up request_id");
  }
  Statement insert(db_, "INSERT INTO jobs (id, owner, request_id, job) VALUES (?1, ?2, ?3, ?4)");
  insert.Bind(1, job.job.id());
  insert.Bind(2, job.owner);
  insert.Bind(3, job.request_id);
  insert.BindBlob(4, job.job.SerializeAsString());
  if (sqlite3_step(insert.get()) != SQLITE_DONE) return Error("insert job");
  job.sequence = sqlite3_last_insert_rowid(db_);
  return job;
}

absl::Status JobStore::Update(const StoredJob& job) {
  absl::MutexLock lock(&mu_);
  Statement update(db_, "UPDATE jobs SET job = ?1 WHERE id = ?2");
  update.BindBlob(1, job.job.SerializeAsString());
  update.Bind(2, job.job.id());
  if (sqlite3_step(update.get()) != SQLITE_DONE) return Error("update job");
  if (sqlite3_changes(db_) != 1) {
    return absl::NotFoundError(absl::StrCat("no job ", job.job.id(), " in ", path_));
  }
  return absl::OkStatus();
}

absl::StatusOr<StoredJob> JobStore::Get(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Statement find(db_, absl::StrCat("SELECT ", kColumns, " FROM jobs WHERE id = ?1").c_str());
  find.Bind(1, job_id);
  const int rc = sqlite3_step(find.get());
  if (rc == SQLITE_ROW) return ReadRow(find, path_);
  if (rc != SQLITE_DONE) return Error("read job");
  return absl::NotFoundError(absl::StrCat("no job ", job_id));
}

absl::StatusOr<std::vector<StoredJob>> JobStore::All() {
  absl::MutexLock lock(&mu_);
  Statement all(db_, absl::StrCat("SELECT ", kColumns, " FROM jobs ORDER BY seq").c_str());
  if (!all.ok()) return Error("list jobs");
  std::vector<StoredJob> jobs;
  int rc;
  while ((rc = sqlite3_step(all.get())) == SQLITE_ROW) {
    absl::StatusOr<StoredJob> job = ReadRow(all, path_);
    if (!job.ok()) return job.status();
    jobs.push_back(*std::move(job));
  }
  if (rc != SQLITE_DONE) return Error("list jobs");
  return jobs;
}

absl::StatusOr<int64_t> JobStore::AppendSteps(const std::string& job_id,
                                              const std::vector<v1::ZoStepRecord>& records) {
  absl::MutexLock lock(&mu_);
  if (!records.empty()) {
    STRATA_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    Statement insert(db_,
                     "INSERT OR IGNORE INTO step_log (job_id, step, record) VALUES (?1, ?2, ?3)");
    Statement stored(db_, "SELECT record FROM step_log WHERE job_id = ?1 AND step = ?2");
    for (const v1::ZoStepRecord& r : records) {
      const std::string bytes = r.SerializeAsString();
      sqlite3_reset(insert.get());
      insert.Bind(1, job_id);
      sqlite3_bind_int64(insert.get(), 2, r.step());
      insert.BindBlob(3, bytes);
      if (sqlite3_step(insert.get()) != SQLITE_DONE) {
        absl::Status status = Error("append step log");
        Exec("ROLLBACK").IgnoreError();
        return status;
      }
      if (sqlite3_changes(db_) != 0) continue;
      // The step is already stored: a resend must be the same update (seed, scalars, lr,
      // skipped). The loss is for progress only and may differ in its last bits when a step is
      // recomputed with another thread count.
      sqlite3_reset(stored.get());
      stored.Bind(1, job_id);
      sqlite3_bind_int64(stored.get(), 2, r.step());
      v1::ZoStepRecord existing;
      bool same = sqlite3_step(stored.get()) == SQLITE_ROW &&
                  existing.ParseFromArray(sqlite3_column_blob(stored.get(), 0),
                                          sqlite3_column_bytes(stored.get(), 0));
      if (same) {
        v1::ZoStepRecord incoming = r;
        existing.clear_loss();
        incoming.clear_loss();
        same = existing.SerializeAsString() == incoming.SerializeAsString();
      }
      if (!same) {
        Exec("ROLLBACK").IgnoreError();
        return absl::AlreadyExistsError(
            absl::StrCat("step log of job ", job_id, ": step ", r.step(),
                         " already has a different record (a step is recorded once)"));
      }
    }
    STRATA_RETURN_IF_ERROR(Exec("COMMIT"));
  }
  // The end of the gap-free prefix: steps 1..n are all present when MAX(step) == COUNT(*)
  // (steps are positive and unique); otherwise find the first gap.
  Statement stats(db_, "SELECT COUNT(*), COALESCE(MAX(step), 0) FROM step_log WHERE job_id = ?1");
  stats.Bind(1, job_id);
  if (sqlite3_step(stats.get()) != SQLITE_ROW) return Error("count step log");
  const int64_t count = sqlite3_column_int64(stats.get(), 0);
  const int64_t max = sqlite3_column_int64(stats.get(), 1);
  if (count == max) return max;
  Statement gap(db_,
                "SELECT MIN(step) FROM step_log a WHERE job_id = ?1 AND NOT EXISTS "
                "(SELECT 1 FROM step_log b WHERE b.job_id = a.job_id AND b.step = a.step + 1)");
  gap.Bind(1, job_id);
  if (sqlite3_step(gap.get()) != SQLITE_ROW) return Error("find step log gap");
  // Steps below the first gap exist only if step 1 does.
  Statement first(db_, "SELECT 1 FROM step_log WHERE job_id = ?1 AND step = 1");
  first.Bind(1, job_id);
  return sqlite3_step(first.get()) == SQLITE_ROW ? sqlite3_column_int64(gap.get(), 0) : 0;
}

absl::StatusOr<std::vector<v1::ZoStepRecord>> JobStore::Steps(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Statement all(db_, "SELECT step, record FROM step_log WHERE job_id = ?1 ORDER BY step");
  all.Bind(1, job_id);
  std::vector<v1::ZoStepRecord> records;
  int rc;
  while ((rc = sqlite3_step(all.get())) == SQLITE_ROW) {
    const int64_t step = sqlite3_column_int64(all.get(), 0);
    if (step != static_cast<int64_t>(records.size()) + 1) break;  // A gap: the prefix ends.
    v1::ZoStepRecord r;
    if (!r.ParseFromString(all.Column(1))) {
      return absl::DataLossError(
          absl::StrCat(path_, ": step ", step, " of job ", job_id, " does not parse"));
    }
    records.push_back(std::move(r));
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Error("read step log");
  return records;
}

absl::Status JobStore::PutRound(const std::string& job_id, const v1::RoundInfo& info,
                                const v1::HistoryEntry* entry) {
  absl::MutexLock lock(&mu_);
  Statement put(db_,
                "INSERT OR REPLACE INTO fed_rounds (job_id, round, info, entry) "
                "VALUES (?1, ?2, ?3, ?4)");
  put.Bind(1, job_id);
  sqlite3_bind_int64(put.get(), 2, info.round());
  put.BindBlob(3, info.SerializeAsString());
  if (entry != nullptr) {
    put.BindBlob(4, entry->SerializeAsString());
  } else {
    sqlite3_bind_null(put.get(), 4);
  }
  if (sqlite3_step(put.get()) != SQLITE_DONE) return Error("store round");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredRound>> JobStore::Rounds(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Statement all(db_, "SELECT round, info, entry FROM fed_rounds WHERE job_id = ?1 ORDER BY round");
  all.Bind(1, job_id);
  std::vector<StoredRound> rounds;
  int rc;
  while ((rc = sqlite3_step(all.get())) == SQLITE_ROW) {
    StoredRound r;
    if (!r.info.ParseFromString(all.Column(1)) ||
        (sqlite3_column_type(all.get(), 2) != SQLITE_NULL &&
         !(r.has_entry = r.entry.ParseFromString(all.Column(2))))) {
      return absl::DataLossError(absl::StrCat(path_, ": round ", sqlite3_column_int64(all.get(), 0),
                                              " of job ", job_id, " does not parse"));
    }
    rounds.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return Error("read rounds");
  return rounds;
}

absl::Status JobStore::SetCordoned(const std::string& worker, bool cordoned) {
  absl::MutexLock lock(&mu_);
  Statement change(db_, cordoned ? "INSERT OR IGNORE INTO cordoned_workers (name) VALUES (?1)"
                                 : "DELETE FROM cordoned_workers WHERE name = ?1");
  change.Bind(1, worker);
  if (!change.ok() || sqlite3_step(change.get()) != SQLITE_DONE) return Error("cordon a worker");
  return absl::OkStatus();
}

absl::StatusOr<std::set<std::string>> JobStore::Cordoned() {
  absl::MutexLock lock(&mu_);
  Statement all(db_, "SELECT name FROM cordoned_workers");
  std::set<std::string> names;
  int rc;
  while ((rc = sqlite3_step(all.get())) == SQLITE_ROW) names.insert(all.Column(0));
  if (rc != SQLITE_DONE) return Error("read cordoned workers");
  return names;
}

}  // namespace strata
