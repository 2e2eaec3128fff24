// Hostile tenants against a real deployment: strata-coordinator and two strata-worker daemons
// over TLS with user, worker and client tokens, as docs/operations.md starts them. A second user
// (bob), a rogue worker holding a valid token of its own (mallory), and a rogue federated client
// try every attack the security model names; each is refused, and the victim's (alice's)
// checkpoint files stay byte-for-byte the same and her job runs to the end undisturbed.
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/strata/v1/federated_service.grpc.pb.h"
#include "proto/strata/v1/job_service.grpc.pb.h"
#include "proto/strata/v1/worker_service.grpc.pb.h"
#include "tests/testing/subprocess.h"

namespace strata {
namespace {

using ::strata::testing::ProcessResult;
using ::strata::testing::ReadFileOrEmpty;
using ::strata::testing::RunProcess;
using ::strata::testing::Subprocess;
using ::strata::testing::TestTmpDir;
using ::strata::testing::WaitForPortFile;
using ::testing::HasSubstr;

constexpr char kCoordinator[] = "services/coordinator/strata-coordinator";
constexpr char kWorker[] = "services/worker/strata-worker";
constexpr char kCli[] = "services/cli/strata";
constexpr char kTrain[] = "services/trainer/strata-train";
constexpr char kData[] = "/usr/share/common-licenses";

std::string Real(const std::string& path) {
  char resolved[PATH_MAX];
  return realpath(path.c_str(), resolved) != nullptr ? resolved : path;
}

// Every regular file under `dir` with its bytes: the victim's state, compared before and after.
std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  std::error_code error;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    if (it->is_regular_file()) files[it->path().string()] = ReadFileOrEmpty(it->path().string());
  }
  return files;
}

class HostileTenantTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = Real(TestTmpDir()) + "/hostile";
    ASSERT_EQ(mkdir(dir_.c_str(), 0755), 0);
    std::ofstream(dir_ + "/tokens") << "alice-token alice\nbob-token bob max_jobs=20\n";
    std::ofstream(dir_ + "/worker-tokens")
        << "alpha-token alpha\nbeta-token beta\nmallory-token mallory\n";
    std::ofstream(dir_ + "/client-tokens") << "phone-token phone\n";
    absl::StatusOr<ProcessResult> certs =
        RunProcess({"/bin/bash", "deploy/dev-certs.sh", dir_ + "/certs"}, dir_);
    ASSERT_TRUE(certs.ok() && certs->exit_code == 0) << (certs.ok() ? certs->err : "");
    ca_ = dir_ + "/certs/ca.pem";
    // A data root holding a dataset and a symlink planted to point at alice's outputs.
    data_ = dir_ + "/data";
    mkdir(data_.c_str(), 0755);
    std::filesystem::copy_file(std::string(kData) + "/GPL-3", data_ + "/corpus.txt");
    const std::string port_file = dir_ + "/coordinator.port";
    absl::StatusOr<Subprocess> coordinator = Subprocess::Start(
        {kCoordinator, "--listen=localhost:0", "--port_file=" + port_file,
         "--data_dir=" + dir_ + "/coordinator", "--tokens_file=" + dir_ + "/tokens",
         "--worker_tokens_file=" + dir_ + "/worker-tokens",
         "--client_tokens_file=" + dir_ + "/client-tokens", "--data_roots=" + data_,
         "--tls_cert=" + dir_ + "/certs/server.pem", "--tls_key=" + dir_ + "/certs/server-key.pem",
         "--heartbeat_interval=200ms", "--heartbeat_timeout=3s", "--metrics_listen="},
        dir_, "coordinator");
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    coordinator_ = std::make_unique<Subprocess>(*std::move(coordinator));
    const int port = WaitForPortFile(port_file, *coordinator_);
    ASSERT_GT(port, 0);
    address_ = absl::StrCat("localhost:", port);
    for (const char* name : {"alpha", "beta"}) StartWorker(name);
  }

  void StartWorker(const std::string& name) {
    const std::string token_file = dir_ + "/" + name + ".token";
    std::ofstream(token_file) << name << "-token\n";
    absl::StatusOr<Subprocess> worker = Subprocess::Start(
        {kWorker, "--coordinator=" + address_, "--name=" + name, "--listen=localhost:0",
         "--cores=1", "--work_dir=" + dir_ + "/work-" + name, "--data_roots=" + data_,
         "--nvme_paths=" + dir_ + "/nvme-" + name, "--train_binary=" + Real(kTrain),
         "--tls_cert=" + dir_ + "/certs/server.pem", "--tls_key=" + dir_ + "/certs/server-key.pem",
         "--tls_ca=" + ca_, "--worker_token_file=" + token_file, "--metrics_listen="},
        dir_, name);
    ASSERT_TRUE(worker.ok()) << worker.status();
    workers_.push_back(std::make_unique<Subprocess>(*std::move(worker)));
  }

  ProcessResult Cli(const std::string& user, std::vector<std::string> args) {
    const std::string token_file = dir_ + "/" + user + ".user-token";
    std::ofstream(token_file) << user << "-token\n";
    args.insert(args.begin(), {kCli, "--coordinator=" + address_, "--tls_ca=" + ca_,
                               "--token_file=" + token_file});
    absl::StatusOr<ProcessResult> result = RunProcess(args, dir_, absl::Minutes(3));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : ProcessResult();
  }

  // A job spec (YAML) on the tiny LLaMA (or `model`, a YAML flow mapping); `extra` adds
  // top-level sections.
  std::string Job(const std::string& name, const std::string& extra, int64_t steps = 40,
                  const std::string& data = "", const std::string& model = "") {
    const std::string path = absl::StrCat(dir_, "/", name, ".yaml");
    std::ofstream(path) << "name: " << name << "\nmodel: "
                        << (model.empty()
                                ? absl::StrCat("{config_json: '",
                                               ::strata::testing::kTinyLlamaConfigJson, "'}")
                                : model)
                        << "\n"
                        << "data: {train_paths: [" << (data.empty() ? data_ + "/corpus.txt" : data)
                        << "], batch_size: 2, seq_len: 16, eval_batches: 1}\n"
                        << "optimizer: {zeroth_order: {lr: 1e-4}}\n"
                        << "training: {max_steps: " << steps << ", log_interval: 10, threads: 1}\n"
                        << extra;
    return path;
  }

  // Submits as `user`, waits for the end, and returns `job describe` (the state and why) and
  // the job's log.
  std::string SubmitAndDescribe(const std::string& user, const std::string& config) {
    const std::string id = Submitted(Cli(user, {"job", "submit", config, "--detach"}));
    EXPECT_FALSE(id.empty()) << config;
    Cli(user, {"job", "wait", id});
    return Cli(user, {"job", "describe", id}).out + Cli(user, {"job", "logs", id}).out;
  }

  std::string Submitted(const ProcessResult& r) {
    const size_t at = r.out.find("submitted job ");
    if (at == std::string::npos) return "";
    return r.out.substr(at + 14, r.out.find(' ', at + 14) - at - 14);
  }

  // A raw gRPC channel to the coordinator over TLS, presenting `token` (as a rogue program
  // would, without the Strata clients' own checks).
  std::shared_ptr<grpc::Channel> Channel(const std::string& token) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ReadFileOrEmpty(ca_);
    return grpc::CreateChannel(
        address_, grpc::CompositeChannelCredentials(grpc::SslCredentials(ssl),
                                                    grpc::AccessTokenCredentials(token)));
  }

  static void Deadline(grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }

  std::string dir_, ca_, data_, address_;
  std::unique_ptr<Subprocess> coordinator_;
  std::vector<std::unique_ptr<Subprocess>> workers_;
};

TEST_F(HostileTenantTest, NothingOfTheVictimChanges) {
  // The victim: alice's job, checkpointed and exported into her area.
  ProcessResult done = Cli("alice", {"job", "submit",
                                     Job("victim",
                                         "checkpoint: {path: runs/victim, "
                                         "interval_steps: 20, export_safetensors: "
                                         "true}\n")});
  ASSERT_EQ(done.exit_code, 0) << done.err << done.out;
  const std::string victim = Submitted(done);
  std::string area;
  for (const char* worker : {"alpha", "beta"}) {
    const std::string candidate = absl::StrCat(dir_, "/work-", worker, "/users/alice");
    if (!ReadFileOrEmpty(candidate + "/runs/victim/export/model.safetensors").empty()) {
      area = candidate;
    }
  }
  ASSERT_FALSE(area.empty()) << "alice's export not found";
  const std::map<std::string, std::string> before = Snapshot(area);
  ASSERT_GT(before.size(), 3u);

  // 1. Paths, refused at submit by field.
  const std::vector<std::pair<std::string, std::string>> refused_at_submit = {
      {Job("steal-ckpt", "checkpoint: {path: ../alice/runs/victim}\n"), "'..' is not allowed"},
      {Job("abs-ckpt", "checkpoint: {path: " + area + "/runs/victim}\n"), "must be relative"},
      {Job("read-export", "", 10, area + "/runs/victim/export/model.safetensors"),
       "outside the cluster's data roots"},
      {Job("resume-theirs",
           "checkpoint: {resume_from: " + area + "/runs/victim/ckpt-0000000040}\n"),
       "outside the cluster's data roots"},
      {Job("passwd", "", 10, "/etc/passwd"), "spec.data.train_paths[0]: /etc/passwd: outside"},
      {Job("their-export", "", 10, "", "{checkpoint_path: " + area + "/runs/victim/export}"),
       "spec.model.checkpoint_path"},
      {Job("million-cores", "priority: 1\nresources: {cores_per_rank: 1000000}\n"),
       "spec.resources.cores_per_rank: at most 4096"},
      {Job("dotdot", "", 10, "../../../../etc/passwd"), "'..' is not allowed"},
      {Job("huge-label", "labels: {note: '" + std::string(3 << 20, 'x') + "'}\n"),
       "bytes serialized; at most"},
  };
  for (const auto& [config, error] : refused_at_submit) {
    ProcessResult r = Cli("bob", {"job", "submit", config, "--detach"});
    EXPECT_EQ(r.exit_code, 1) << config;
    EXPECT_THAT(r.err, HasSubstr(error)) << config;
  }
  // 2. Paths that pass the coordinator's lexical check and are caught by the worker: a symlink
  // planted in the data root that points into alice's area, and a relative path that names
  // alice's job id (it resolves in bob's own area, where there is nothing).
  ASSERT_EQ(symlink((area + "/runs/victim/export").c_str(), (data_ + "/innocent").c_str()), 0);
  const std::string symlinked = SubmitAndDescribe(
      "bob",
      Job("symlink", "max_restarts: 0\n", 10, "", "{checkpoint_path: " + data_ + "/innocent}"));
  EXPECT_THAT(symlinked, HasSubstr("ERROR"));
  EXPECT_THAT(symlinked, HasSubstr("resolves (through a symlink) outside"));
  const std::string relative =
      SubmitAndDescribe("bob", Job("relative",
                                   "max_restarts: 0\ncheckpoint: {resume_from: runs/victim/"
                                   "ckpt-0000000040}\n"));
  EXPECT_THAT(relative, HasSubstr("does not exist on this worker"));
  // A config path at a file that is not a config: the error never shows what the file holds.
  std::ofstream(data_ + "/secret.json") << R"({"model_type": "hunter2 the password"})";
  const std::string echoed = SubmitAndDescribe(
      "bob", Job("echo", "max_restarts: 0\n", 10, "", "{config_path: " + data_ + "/secret.json}"));
  EXPECT_THAT(echoed, HasSubstr("ERROR"));
  EXPECT_THAT(echoed, ::testing::Not(HasSubstr("hunter2")));

  // 3. A job no worker could ever fit waits as unschedulable and blocks nobody.
  ProcessResult hog = Cli("bob", {"job", "submit", Job("hog", "priority: 1\n"),
                                  "--config=resources.cores_per_rank=4096", "--detach"});
  ASSERT_EQ(hog.exit_code, 0) << hog.err;
  ProcessResult after_hog = Cli("bob", {"job", "submit", Job("after-hog", "priority: 50\n", 10)});
  EXPECT_EQ(after_hog.exit_code, 0) << after_hog.err << after_hog.out;
  EXPECT_THAT(Cli("bob", {"job", "describe", Submitted(hog)}).out, HasSubstr("unschedulable"));

  // 4. A rogue worker with its own valid token cannot take over alpha, receive its orders, or
  // report for alice's ranks; a user token is no worker token.
  auto rogue = v1::WorkerService::NewStub(Channel("mallory-token"));
  {
    grpc::ClientContext context;
    Deadline(&context);
    v1::RegisterWorkerRequest takeover;
    takeover.set_name("alpha");
    takeover.set_address("evil.example:1");
    takeover.mutable_capacity()->set_cores(64);
    takeover.mutable_capacity()->set_memory_bytes(int64_t{1} << 36);
    v1::RegisterWorkerResponse response;
    EXPECT_EQ(rogue->Register(&context, takeover, &response).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext context;
    Deadline(&context);
    v1::AssignmentsRequest request;
    request.set_worker_id("alpha");
    v1::Assignment order;
    auto reader = rogue->Assignments(&context, request);
    EXPECT_FALSE(reader->Read(&order));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  const ProcessResult running_job = Cli("alice", {"job", "submit", Job("victim-running", "", 3000),
                                                  "--detach", "--config=data.batch_size=32"});
  const std::string running = Submitted(running_job);
  ASSERT_FALSE(running.empty()) << running_job.err;
  std::string json;
  for (int i = 0; i < 600 && json.find("JOB_STATE_RUNNING") == std::string::npos; ++i) {
    json = Cli("alice", {"job", "describe", running, "--output=json"}).out;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_THAT(json, HasSubstr("JOB_STATE_RUNNING"));
  const std::string placed =
      json.find("\"worker_id\": \"alpha\"") != std::string::npos ? "alpha" : "beta";
  v1::RankRef ref;
  ref.set_job_id(running);
  ref.set_attempt(1);
  ref.set_rank(0);
  for (const std::string& claimed : {std::string("mallory"), placed}) {
    grpc::ClientContext context;
    Deadline(&context);
    v1::ProgressReport progress;
    *progress.mutable_ref() = ref;
    progress.set_worker_id(claimed);
    progress.mutable_progress()->set_step(2999);
    v1::ReportAck ack;
    EXPECT_EQ(rogue->ReportProgress(&context, progress, &ack).error_code(),
              grpc::StatusCode::PERMISSION_DENIED)
        << claimed;
  }
  for (const std::string& claimed : {std::string("mallory"), placed}) {
    grpc::ClientContext context;
    Deadline(&context);
    v1::RankExit exit;
    *exit.mutable_ref() = ref;
    exit.set_worker_id(claimed);
    exit.set_completed(true);
    v1::ReportAck ack;
    const grpc::Status status = rogue->ReportRankExit(&context, exit, &ack);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << claimed;
  }
  {
    grpc::ClientContext context;
    Deadline(&context);
    v1::StepLogReport steps;
    *steps.mutable_ref() = ref;
    steps.set_worker_id("mallory");
    v1::ZoStepRecord* record = steps.add_records();
    record->set_step(2999);
    record->add_projected_grads(1e9);
    v1::StepLogAck ack;
    EXPECT_EQ(rogue->ReportStepLog(&context, steps, &ack).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext context;
    Deadline(&context);
    v1::StoreSetRequest set;
    set.set_prefix(running + "/1");
    set.set_key("rank0");
    set.set_value("evil.example:1");
    v1::StoreSetResponse response;
    EXPECT_EQ(rogue->StoreSet(&context, set, &response).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    auto as_user = v1::WorkerService::NewStub(Channel("bob-token"));
    grpc::ClientContext context;
    Deadline(&context);
    v1::RankExit exit;
    *exit.mutable_ref() = ref;
    exit.set_worker_id(placed);
    v1::ReportAck ack;
    EXPECT_EQ(as_user->ReportRankExit(&context, exit, &ack).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  // 5. Bob cannot see, stop or wait on alice's jobs.
  EXPECT_EQ(Cli("bob", {"job", "kill", running}).exit_code, 1);
  EXPECT_THAT(Cli("bob", {"job", "list"}).out, ::testing::Not(HasSubstr(running)));

  // 6. A rogue federated client: no token, or a weight no honest client has.
  const std::string federated_yaml = dir_ + "/federated.yaml";
  std::ofstream(federated_yaml) << "name: fed\nmodel: {config_json: '"
                                << ::strata::testing::kTinyLlamaConfigJson << "'}\n"
                                << "data: {batch_size: 2, seq_len: 16}\n"
                                << "optimizer: {zeroth_order: {lr: 1e-3}}\n"
                                << "federated: {num_rounds: 2, min_available_nodes: 2}\n";
  const std::string fed_job = Submitted(Cli("bob", {"job", "submit", federated_yaml, "--detach"}));
  ASSERT_FALSE(fed_job.empty());
  {
    auto federated = v1::FederatedService::NewStub(Channel("unused"));
    grpc::ClientContext context;
    Deadline(&context);
    v1::RegisterClientRequest request;
    request.set_job_id(fed_job);
    request.set_client_id("phone");
    request.set_token("phone-token");
    request.set_num_samples(1'000'000'000);
    v1::RegisterClientResponse response;
    const grpc::Status heavy = federated->Register(&context, request, &response);
    EXPECT_EQ(heavy.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(heavy.error_message(), HasSubstr("federated.max_num_samples"));
  }
  {
    auto federated = v1::FederatedService::NewStub(Channel("unused"));
    grpc::ClientContext context;
    Deadline(&context);
    v1::RegisterClientRequest request;
    request.set_job_id(fed_job);
    request.set_client_id("phone");
    v1::RegisterClientResponse response;
    EXPECT_EQ(federated->Register(&context, request, &response).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }

  // The victim's job ran to the end on its own, and her files are unchanged.
  ProcessResult waited = Cli("alice", {"job", "wait", running});
  EXPECT_EQ(waited.exit_code, 0) << waited.err << waited.out;
  EXPECT_THAT(Cli("alice", {"job", "describe", running, "--output=json"}).out,
              HasSubstr("\"step\": \"3000\""));
  const std::map<std::string, std::string> after = Snapshot(area + "/runs");
  std::map<std::string, std::string> victim_before;
  for (const auto& [path, bytes] : before) {
    if (path.rfind(area + "/runs/", 0) == 0) victim_before[path] = bytes;
  }
  EXPECT_EQ(after.size(), victim_before.size());
  for (const auto& [path, bytes] : victim_before) {
    auto it = after.find(path);
    ASSERT_NE(it, after.end()) << path << " is gone";
    EXPECT_TRUE(it->second == bytes) << path << " changed";
  }
  EXPECT_THAT(Cli("alice", {"job", "describe", victim}).out, HasSubstr("COMPLETED"));
}

}  // namespace
}  // namespace strata
