// JobStore on real SQLite files: rows survive reopening (and a process killed with SIGKILL right
// after an insert returned), request ids are idempotent per owner, and a foreign or damaged file
// is refused with its path instead of being overwritten.
#include "services/coordinator/job_store.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

std::string FreshDir(const std::string& name) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::system(("rm -rf " + dir).c_str());
  return dir;
}

StoredJob MakeJob(const std::string& id, const std::string& owner, const std::string& request) {
  StoredJob job;
  job.owner = owner;
  job.request_id = request;
  job.job.set_id(id);
  job.job.set_state(v1::JOB_STATE_QUEUED);
  job.job.mutable_spec()->set_name("job " + id);
  job.job.mutable_spec()->set_priority(7);
  return job;
}

TEST(JobStoreTest, RowsSurviveReopeningInSubmissionOrder) {
  const std::string dir = FreshDir("reopen");
  {
    auto store = JobStore::Open(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    auto a = (*store)->Insert(MakeJob("a", "alice", ""));
    auto b = (*store)->Insert(MakeJob("b", "bob", ""));
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_LT(a->sequence, b->sequence);
    StoredJob updated = *b;
    updated.job.set_state(v1::JOB_STATE_RUNNING);
    ASSERT_TRUE((*store)->Update(updated).ok());
  }
  auto store = JobStore::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  auto all = (*store)->All();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].job.id(), "a");
  EXPECT_EQ((*all)[0].owner, "alice");
  EXPECT_EQ((*all)[1].job.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ((*all)[1].job.spec().name(), "job b");
  EXPECT_EQ((*store)->Get("zzz").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*store)->Update(MakeJob("zzz", "x", "")).code(), absl::StatusCode::kNotFound);
}

TEST(JobStoreTest, RequestIdIsIdempotentPerOwner) {
  auto store = JobStore::Open(FreshDir("idempotent"));
  ASSERT_TRUE(store.ok());
  auto first = (*store)->Insert(MakeJob("j1", "alice", "req-1"));
  auto again = (*store)->Insert(MakeJob("j2", "alice", "req-1"));
  auto other_owner = (*store)->Insert(MakeJob("j3", "bob", "req-1"));
  ASSERT_TRUE(first.ok() && again.ok() && other_owner.ok());
  EXPECT_EQ(again->job.id(), "j1");
  EXPECT_EQ(again->sequence, first->sequence);
  EXPECT_EQ(other_owner->job.id(), "j3");
  EXPECT_EQ((*store)->All()->size(), 2u);
  // A duplicate job id is an error, not a silent overwrite.
  EXPECT_FALSE((*store)->Insert(MakeJob("j1", "carol", "")).ok());
}

TEST(JobStoreTest, AnInsertThatReturnedSurvivesSigkill) {
  const std::string dir = FreshDir("sigkill");
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  if (child == 0) {
    auto store = JobStore::Open(dir);
    if (!store.ok() || !(*store)->Insert(MakeJob("durable", "alice", "r")).ok()) _exit(1);
    const char byte = 1;
    if (write(ready[1], &byte, 1) != 1) _exit(1);
    pause();  // Killed here, without closing the database.
    _exit(0);
  }
  close(ready[1]);
  char byte = 0;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  auto store = JobStore::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  auto job = (*store)->Get("durable");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->request_id, "r");
}

v1::ZoStepRecord Step(int64_t step) {
  v1::ZoStepRecord r;
  r.set_step(step);
  r.set_seed(1000 + step);
  r.add_projected_grads(0.25 * step);
  r.set_lr(1e-4);
  return r;
}

TEST(JobStoreTest, StepLogIsGapFreeWriteOnceAndDurable) {
  const std::string dir = FreshDir("steps");
  {
    auto store = JobStore::Open(dir);
    ASSERT_TRUE(store.ok());
    EXPECT_EQ(*(*store)->AppendSteps("j", {Step(1), Step(2), Step(3)}), 3);
    EXPECT_EQ(*(*store)->AppendSteps("j", {Step(5)}), 3);  // A gap: the prefix ends at 3.
    v1::ZoStepRecord changed = Step(2);
    changed.set_seed(7);
    // A different record for a stored step is refused, with nothing of the batch written.
    EXPECT_EQ((*store)->AppendSteps("j", {Step(4), changed}).status().code(),
              absl::StatusCode::kAlreadyExists);
    EXPECT_EQ(*(*store)->AppendSteps("j", {}), 3);
    EXPECT_EQ(*(*store)->AppendSteps("j", {Step(2), Step(4)}), 5);  // Resent as is: fine.
    EXPECT_EQ(*(*store)->AppendSteps("other", {Step(2)}), 0);       // No step 1.
  }
  auto store = JobStore::Open(dir);
  ASSERT_TRUE(store.ok());
  auto steps = (*store)->Steps("j");
  ASSERT_TRUE(steps.ok());
  ASSERT_EQ(steps->size(), 5u);
  EXPECT_EQ((*steps)[1].seed(), 1002u);
  EXPECT_EQ((*steps)[4].step(), 5);
  EXPECT_TRUE((*store)->Steps("other")->empty());
}

TEST(JobStoreTest, ForeignAndDamagedFilesAreRefusedByPath) {
  const std::string dir = FreshDir("foreign");
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  {
    std::ofstream garbage(dir + "/jobs.db", std::ios::binary);
    garbage << std::string(8192, 'x');
  }
  auto store = JobStore::Open(dir);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr(dir + "/jobs.db"));
  std::ifstream still(dir + "/jobs.db", std::ios::binary);
  std::string contents((std::istreambuf_iterator<char>(still)), std::istreambuf_iterator<char>());
  EXPECT_EQ(contents, std::string(8192, 'x'));  // Untouched.

  // Another application's SQLite database.
  const std::string other = FreshDir("other-app");
  ASSERT_EQ(std::system(("mkdir -p " + other).c_str()), 0);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((other + "/jobs.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x);", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto foreign = JobStore::Open(other);
  ASSERT_FALSE(foreign.ok());
  EXPECT_THAT(foreign.status().message(), HasSubstr("not a Strata job database"));

  // A data directory that cannot be created.
  auto unwritable = JobStore::Open("/proc/strata-no-such-dir");
  ASSERT_FALSE(unwritable.ok());
  EXPECT_THAT(unwritable.status().message(), HasSubstr("/proc/strata-no-such-dir"));
}

}  // namespace
}  // namespace strata
