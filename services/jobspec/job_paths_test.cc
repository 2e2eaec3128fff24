// The storage model's two checks: lexical at submit (CheckSpecPaths) and against the file system
// on the worker (ResolveSpecPaths): data roots, the owner's area, `..`, absolute output paths,
// symlinks out of a root, and error texts that name the field.
#include "services/jobspec/job_paths.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

std::string Real(const std::string& path) {
  char resolved[PATH_MAX];
  return realpath(path.c_str(), resolved) != nullptr ? resolved : path;
}

class JobPathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = Real(getenv("TEST_TMPDIR")) + "/" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (const std::string d : {"", "/data", "/data/sub", "/work", "/work/users",
                                "/work/users/alice", "/work/users/bob", "/secret"}) {
      mkdir((base_ + d).c_str(), 0755);
    }
    std::ofstream(base_ + "/data/corpus.txt") << "text";
    std::ofstream(base_ + "/secret/passwd") << "root:x:0:0";
    std::ofstream(base_ + "/work/users/bob/weights") << "bob's";
    roots_.owner_area = base_ + "/work/users/alice";
    roots_.data_roots = {base_ + "/data"};
  }

  std::string base_;
  WorkerRoots roots_;
};

TEST(SafeName, RefusesSeparatorsDotsAndEmpty) {
  EXPECT_TRUE(IsSafePathComponent("alice"));
  EXPECT_TRUE(IsSafePathComponent("j-00ab12cd34"));
  for (const char* bad : {"", ".", "..", "a/b", "a b", "ä", "../x"}) {
    EXPECT_FALSE(IsSafePathComponent(bad)) << bad;
  }
  EXPECT_FALSE(IsSafePathComponent(std::string(64, 'a')));
}

TEST(DataRoots, MustBeAbsoluteWithoutDotDot) {
  EXPECT_EQ(*NormalizeDataRoots({"/data/", "/models"}, "--data_roots"),
            (std::vector<std::string>{"/data", "/models"}));
  EXPECT_THAT(NormalizeDataRoots({"data"}, "--data_roots").status().message(),
              HasSubstr("--data_roots: data is not absolute"));
  EXPECT_FALSE(NormalizeDataRoots({"/data/../etc"}, "--data_roots").ok());
}

TEST(CheckSpecPaths, AdmitsDataRootsAndTheOwnersArea) {
  v1::JobSpec spec;
  spec.mutable_model()->set_checkpoint_path("jobs/j-1/checkpoints/export");
  spec.mutable_data()->add_train_paths("/data/corpus.txt");
  spec.mutable_data()->add_eval_paths("/data");
  spec.mutable_checkpoint()->set_path("my-run");
  spec.mutable_checkpoint()->set_resume_from("jobs/j-1/checkpoints/ckpt-0000000100");
  EXPECT_TRUE(CheckSpecPaths(spec, {"/data"}).ok()) << CheckSpecPaths(spec, {"/data"});
}

TEST(CheckSpecPaths, RefusesEachEscapeNamingTheField) {
  struct Case {
    std::function<void(v1::JobSpec*)> set;
    const char* error;
  };
  const std::vector<Case> cases = {
      {[](v1::JobSpec* s) { s->mutable_data()->add_train_paths("/etc/passwd"); },
       "spec.data.train_paths[0]: /etc/passwd: outside the cluster's data roots"},
      {[](v1::JobSpec* s) { s->mutable_data()->add_train_paths("/database/x"); },
       "spec.data.train_paths[0]: /database/x: outside"},
      {[](v1::JobSpec* s) { s->mutable_data()->add_eval_paths("/data/../etc/passwd"); },
       "spec.data.eval_paths[0]: /data/../etc/passwd: '..' is not allowed"},
      {[](v1::JobSpec* s) { s->mutable_model()->set_config_path("../../../etc/passwd"); },
       "spec.model.config_path: ../../../etc/passwd: '..' is not allowed"},
      {[](v1::JobSpec* s) { s->mutable_model()->set_checkpoint_path("../bob/jobs/j-1"); },
       "spec.model.checkpoint_path: ../bob/jobs/j-1: '..' is not allowed"},
      {[](v1::JobSpec* s) { s->mutable_data()->set_tokenizer_path("/root/tokenizer.json"); },
       "spec.data.tokenizer_path: /root/tokenizer.json: outside"},
      {[](v1::JobSpec* s) { s->mutable_checkpoint()->set_path("/data/ckpt"); },
       "spec.checkpoint.path: /data/ckpt: must be relative"},
      {[](v1::JobSpec* s) { s->mutable_checkpoint()->set_resume_from("/work/users/bob/x"); },
       "spec.checkpoint.resume_from: /work/users/bob/x: outside"},
      {[](v1::JobSpec* s) { s->mutable_checkpoint()->set_path(std::string(2000, 'a')); },
       "spec.checkpoint.path: longer than 1024 bytes"},
      {[](v1::JobSpec* s) { s->mutable_checkpoint()->set_path(std::string("a\0b", 3)); },
       "spec.checkpoint.path: contains a NUL byte"},
      // A task's example files are inputs like any other.
      {[](v1::JobSpec* s) { s->mutable_task()->set_train_path("/etc/shadow"); },
       "spec.task.train_path: /etc/shadow: outside"},
      {[](v1::JobSpec* s) { s->mutable_task()->set_dev_path("../bob/dev.jsonl"); },
       "spec.task.dev_path: ../bob/dev.jsonl: '..' is not allowed"},
      {[](v1::JobSpec* s) { s->mutable_task()->set_test_path("/root/test.jsonl"); },
       "spec.task.test_path: /root/test.jsonl: outside"},
  };
  for (const Case& c : cases) {
    v1::JobSpec spec;
    c.set(&spec);
    EXPECT_THAT(std::string(CheckSpecPaths(spec, {"/data"}).message()), HasSubstr(c.error));
  }
  v1::JobSpec spec;
  spec.mutable_data()->add_train_paths("/data/x");
  EXPECT_THAT(std::string(CheckSpecPaths(spec, {}).message()),
              HasSubstr("none declared: --data_roots"));
}

TEST_F(JobPathsTest, ResolvesInputsAndCreatesTheOutputInsideTheOwnersArea) {
  v1::JobSpec spec;
  spec.mutable_data()->add_train_paths(base_ + "/data/corpus.txt");
  spec.mutable_checkpoint()->set_path("runs/first");
  absl::StatusOr<v1::JobSpec> resolved = ResolveSpecPaths(spec, roots_);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->data().train_paths(0), base_ + "/data/corpus.txt");
  EXPECT_EQ(resolved->checkpoint().path(), base_ + "/work/users/alice/runs/first");
  struct stat st;
  EXPECT_EQ(stat(resolved->checkpoint().path().c_str(), &st), 0);
}

TEST_F(JobPathsTest, SymlinksOutOfARootAreRefused) {
  // A data root holding a link to a secret, and the owner's area holding a link to another
  // user's area: both resolve outside what the field may reach.
  ASSERT_EQ(symlink((base_ + "/secret/passwd").c_str(), (base_ + "/data/link").c_str()), 0);
  ASSERT_EQ(symlink((base_ + "/work/users/bob").c_str(), (base_ + "/work/users/alice/bob").c_str()),
            0);
  v1::JobSpec read;
  read.mutable_data()->add_train_paths(base_ + "/data/link");
  EXPECT_THAT(std::string(ResolveSpecPaths(read, roots_).status().message()),
              HasSubstr("spec.data.train_paths[0]: " + base_ +
                        "/data/link resolves (through a symlink) outside"));
  v1::JobSpec task;
  task.mutable_task()->set_train_path(base_ + "/data/link");
  EXPECT_THAT(std::string(ResolveSpecPaths(task, roots_).status().message()),
              HasSubstr("spec.task.train_path: " + base_ + "/data/link resolves"));
  v1::JobSpec steal;
  steal.mutable_model()->set_checkpoint_path("bob/weights");
  EXPECT_THAT(std::string(ResolveSpecPaths(steal, roots_).status().message()),
              HasSubstr("spec.model.checkpoint_path: bob/weights resolves"));
  v1::JobSpec write;
  write.mutable_checkpoint()->set_path("bob/ckpt");
  EXPECT_THAT(std::string(ResolveSpecPaths(write, roots_).status().message()),
              HasSubstr("spec.checkpoint.path: bob/ckpt resolves"));
  struct stat st;
  EXPECT_NE(stat((base_ + "/work/users/bob/ckpt").c_str(), &st), 0)
      << "MakeDirs followed the link: bob's area changed";
}

TEST_F(JobPathsTest, MissingInputNamesTheFieldAndNothingElse) {
  v1::JobSpec spec;
  spec.mutable_checkpoint()->set_resume_from("jobs/j-9/checkpoints/ckpt-0000000001");
  EXPECT_THAT(std::string(ResolveSpecPaths(spec, roots_).status().message()),
              HasSubstr("spec.checkpoint.resume_from: jobs/j-9/checkpoints/ckpt-0000000001 "
                        "does not exist on this worker"));
}

// A data root configured through a symlink (/data -> the real directory) admits the paths users
// write, under the name they know, and still resolves them inside the real directory.
TEST_F(JobPathsTest, ADataRootGivenAsASymlinkAdmitsItsPaths) {
  const std::string link = base_ + "/data-link";
  ASSERT_EQ(symlink((base_ + "/data").c_str(), link.c_str()), 0);
  roots_.data_roots_as_given = {link};
  v1::JobSpec spec;
  spec.mutable_data()->add_train_paths(link + "/corpus.txt");
  absl::StatusOr<v1::JobSpec> resolved = ResolveSpecPaths(spec, roots_);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->data().train_paths(0), base_ + "/data/corpus.txt");
  spec.mutable_data()->set_train_paths(0, link + "/../secret/passwd");
  EXPECT_FALSE(ResolveSpecPaths(spec, roots_).ok());
}

}  // namespace
}  // namespace strata
