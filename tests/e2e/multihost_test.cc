// Strata across hosts: a virtual network of one network namespace per host (the coordinator
// and three workers), each joined by a veth pair to a bridge that lives in a namespace of its
// own, so the machine's network is never touched. Every daemon runs inside its host's
// namespace (`ip netns exec`) and is reached only at that host's address, over TLS with a
// certificate for those addresses: registration, heartbeats, assignments and reports (gRPC)
// and the ranks' all-reduce (Gloo, on each worker's advertised address) all cross the bridge.
//
// The scenario: a two-rank FO job runs on two hosts; a ZO job runs to the end as a reference;
// the same ZO job is started again and its worker's link is cut part-way. The coordinator
// declares the worker lost, the job restarts on another host from the coordinator's copy of
// the step log and ends with weights byte-identical to the reference and a step log holding
// every step once. The link comes back: the worker is ready again, the rank it ran before the
// partition (its stale attempt) is stopped without touching the job, and the worker runs new
// work. It prints `multihost: partition_to_lost_s=... restart_s=... heal_s=...`.
//
// On shared storage (MultiHostSharedStorageTest: every worker has the same --work_dir and the
// job a relative checkpoint.path, so both attempts use one checkpoint directory), the new
// attempt claims the directory while the cut-off rank still runs. That rank stops without
// writing (it sees the claim, or the coordinator stops it once the cable is back); the job
// ends with the reference's weights, a shared step log holding every step once, the claim
// naming its last attempt, and every step in the coordinator's store (read from jobs.db once
// the coordinator stopped).
//
// Namespaces, bridge and links are named after the test's pid and removed in TearDown;
// leftovers of runs that died before their TearDown are removed at the next start. The test
// is skipped (with the reason) only where the machine cannot make the network: no `ip`, not
// root (CAP_SYS_ADMIN and CAP_NET_ADMIN), or a kernel without bridges.
#include <dirent.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/strata/v1/common.pb.h"
#include "runtime/zo/step_log.h"
#include "tests/testing/subprocess.h"

namespace strata {
namespace {

using ::strata::testing::Absolute;
using ::strata::testing::ProcessResult;
using ::strata::testing::ReadFileOrEmpty;
using ::strata::testing::RunProcess;
using ::strata::testing::Subprocess;
using ::strata::testing::TestTmpDir;
using ::strata::testing::WaitForPortFile;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kCoordinator[] = "services/coordinator/strata-coordinator";
constexpr char kWorker[] = "services/worker/strata-worker";
constexpr char kCli[] = "services/cli/strata";
constexpr char kTrain[] = "services/trainer/strata-train";

// Namespaces of this test are "strata-mh<pid>-<host>": a leftover whose pid is gone is stale.
constexpr char kNamespacePrefix[] = "strata-mh";
// The hosts' subnet. It exists only inside the test's namespaces, so it cannot clash with the
// machine's networks or with another run's (each run has its own bridge).
constexpr char kSubnet[] = "10.231.7.";
// Fixed ports are free: every host has a port space of its own.
constexpr int kCoordinatorPort = 7070;
constexpr int kWorkerPort = 7071;
constexpr int kMetricsPort = 9091;
// The ZO runs: slow enough (batch 32) to be cut part-way, as job_test's killed-worker run.
constexpr int64_t kZoSteps = 3000;
constexpr int64_t kCutAfterStep = 600;
// How long the cable stays out: longer than a worker's heartbeat deadline (5 s) and its rank
// reports' (10 s), so the worker sees its calls fail and its connection to the coordinator
// break, as in a real outage.
constexpr absl::Duration kPartition = absl::Seconds(12);

// iproute2's `ip`, or "" when it is not installed.
std::string IpBinary() {
  for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (access(path, X_OK) == 0) return path;
  }
  return "";
}

// Pids of the processes whose command line contains `needle`.
std::vector<pid_t> ProcessesWith(const std::string& needle) {
  std::vector<pid_t> pids;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  while (dirent* entry = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    std::string cmdline = ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/cmdline"));
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(needle) != std::string::npos) pids.push_back(pid);
  }
  closedir(proc);
  return pids;
}

// A ZO (or FO) job on the tiny LLaMA over the GPL text, checkpointing into `ckpt` (default:
// the job's directory); `resources` adds to the resources section.
std::string JobYaml(const std::string& name, const std::string& ckpt, int64_t steps, bool zo,
                    int batch, const std::string& resources = "") {
  return absl::StrCat(
      "name: ", name, "\nmodel:\n  config_json: '", ::strata::testing::kTinyLlamaConfigJson,
      "'\ndata:\n  train_paths: [/usr/share/common-licenses/GPL-3]\n  batch_size: ", batch,
      "\n  seq_len: 16\n  eval_batches: 2\noptimizer:\n",
      zo ? "  zeroth_order: {lr: 1e-4, epsilon: 1e-3}\n"
         : "  adamw: {lr: 3e-3, weight_decay: 0.1}\n",
      "training: {max_steps: ", steps, ", log_interval: 50, threads: 1, seed: 3}\n",
      "resources: {cores_per_rank: 1", resources, "}\ncheckpoint: {",
      ckpt.empty() ? "" : "path: " + ckpt + ", ",
      "interval_steps: 200, export_safetensors: true}\n");
}

int64_t JsonInt(const std::string& json, const std::string& key) {
  const std::string quoted = "\"" + key + "\": ";
  const size_t at = json.find(quoted);
  if (at == std::string::npos) return 0;
  std::string text = json.substr(at + quoted.size(), 24);
  if (!text.empty() && text[0] == '"') text = text.substr(1);
  int64_t value = 0;
  absl::SimpleAtoi(text.substr(0, text.find_first_of("\",\n}")), &value);
  return value;
}

// The workers a job's placements name, in rank order.
std::vector<std::string> PlacedOn(const std::string& json) {
  std::vector<std::string> workers;
  const std::string key = "\"worker_id\": \"";
  const size_t placements = json.find("\"placements\"");
  if (placements == std::string::npos) return workers;
  const size_t end = json.find(']', placements);
  for (size_t at = json.find(key, placements); at != std::string::npos && at < end;
       at = json.find(key, at + 1)) {
    const size_t begin = at + key.size();
    workers.push_back(json.substr(begin, json.find('"', begin) - begin));
  }
  return workers;
}

// "ready" or "lost" for worker `name` in a `node list --all` table; "" when it is not listed.
std::string NodeState(const std::string& table, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(table, '\n')) {
    std::vector<absl::string_view> columns = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (columns.empty() || columns[0] != name) continue;
    for (absl::string_view column : columns) {
      if (column == "ready" || column == "lost") return std::string(column);
    }
  }
  return "";
}

struct Host {
  std::string name;        // Also the worker's name and its label host=<name>.
  std::string netns;       // Its network namespace.
  std::string address;     // Its address on the bridge.
  std::string bridge_end;  // Its veth end in the bridge's namespace (the "cable").
};

class MultiHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ip_ = IpBinary();
    if (ip_.empty()) GTEST_SKIP() << "iproute2's ip is not installed: no network namespaces";
    dir_ = absl::StrCat(TestTmpDir(), "/",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_EQ(mkdir(dir_.c_str(), 0755), 0) << dir_;
    RemoveLeftovers();
    const std::string prefix = absl::StrCat(kNamespacePrefix, getpid(), "-");
    bridge_netns_ = prefix + "net";
    absl::StatusOr<ProcessResult> made =
        RunProcess({ip_, "netns", "add", bridge_netns_}, dir_, absl::Seconds(30));
    ASSERT_TRUE(made.ok()) << made.status();
    if (made->exit_code != 0) {
      GTEST_SKIP()
          << "cannot create a network namespace (needs root: CAP_SYS_ADMIN and CAP_NET_ADMIN): "
          << made->err;
    }
    namespaces_.push_back(bridge_netns_);
    absl::StatusOr<ProcessResult> entered = RunProcess(
        {ip_, "netns", "exec", bridge_netns_, ip_, "link", "show"}, dir_, absl::Seconds(30));
    ASSERT_TRUE(entered.ok()) << entered.status();
    if (entered->exit_code != 0) {
      GTEST_SKIP() << "cannot run a process in a network namespace (needs CAP_SYS_ADMIN): "
                   << entered->err;
    }
    absl::StatusOr<ProcessResult> bridge = RunProcess(
        {ip_, "-n", bridge_netns_, "link", "add", "name", "br0", "type", "bridge"}, dir_);
    ASSERT_TRUE(bridge.ok()) << bridge.status();
    if (bridge->exit_code != 0) {
      GTEST_SKIP() << "the kernel cannot make a bridge: " << bridge->err;
    }
    ASSERT_TRUE(Ip({"-n", bridge_netns_, "link", "set", "dev", "br0", "up"}));
    coordinator_host_ = AddHost("coord", prefix, 1);
    ASSERT_FALSE(coordinator_host_.address.empty());
    for (int i = 1; i <= 3; ++i) {
      workers_.push_back(AddHost(absl::StrCat("w", i), prefix, 10 + i));
      ASSERT_FALSE(workers_.back().address.empty());
    }
    MakeCertificates();
    if (HasFatalFailure()) return;
    std::ofstream(dir_ + "/tokens") << "alice-token alice\n";
    std::ofstream(dir_ + "/worker-tokens") << "w1-token w1\nw2-token w2\nw3-token w3\n";
    std::ofstream(dir_ + "/alice.token") << "alice-token\n";
    coordinator_address_ = absl::StrCat(coordinator_host_.address, ":", kCoordinatorPort);
    StartCoordinator();
    for (const Host& host : workers_) {
      if (HasFatalFailure()) return;
      StartWorker(host);
    }
  }

  void TearDown() override {
    // Daemons first (their ranks die with them), then the namespaces and every link in them.
    for (auto& [name, worker] : worker_processes_) worker.reset();
    coordinator_.reset();
    for (const std::string& netns : namespaces_) {
      RunProcess({ip_, "netns", "del", netns}, dir_, absl::Seconds(30)).IgnoreError();
    }
  }

  // Namespaces of earlier runs whose process is gone (a crash skipped their TearDown), and the
  // daemons such a run left in them.
  void RemoveLeftovers() {
    absl::StatusOr<ProcessResult> listed = RunProcess({ip_, "netns", "list"}, dir_);
    if (!listed.ok() || listed->exit_code != 0) return;
    for (absl::string_view line : absl::StrSplit(listed->out, '\n', absl::SkipEmpty())) {
      const std::string name(line.substr(0, line.find(' ')));
      if (name.rfind(kNamespacePrefix, 0) != 0) continue;
      const std::string rest = name.substr(sizeof(kNamespacePrefix) - 1);
      int pid = 0;
      if (!absl::SimpleAtoi(rest.substr(0, rest.find('-')), &pid)) continue;
      if (kill(pid, 0) == 0 || errno != ESRCH) continue;  // Its run is still going.
      absl::StatusOr<ProcessResult> inside = RunProcess({ip_, "netns", "pids", name}, dir_);
      if (inside.ok()) {
        for (absl::string_view left : absl::StrSplit(inside->out, '\n', absl::SkipEmpty())) {
          int left_pid = 0;
          if (absl::SimpleAtoi(left, &left_pid) && left_pid > 0) kill(left_pid, SIGKILL);
        }
      }
      RunProcess({ip_, "netns", "del", name}, dir_).IgnoreError();
    }
  }

  // Runs `ip args...`; a failure fails the test with ip's message.
  bool Ip(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {ip_};
    argv.insert(argv.end(), args.begin(), args.end());
    absl::StatusOr<ProcessResult> r = RunProcess(argv, dir_, absl::Seconds(30));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return false;
    EXPECT_EQ(r->exit_code, 0) << "ip " << absl::StrJoin(args, " ") << ": " << r->err;
    return r->exit_code == 0;
  }

  // A host: its namespace, a veth pair from its eth0 to the bridge, address kSubnet.<octet>.
  // Returns a Host with an empty address on failure (the test has failed).
  Host AddHost(const std::string& name, const std::string& prefix, int octet) {
    Host host;
    host.name = name;
    host.netns = prefix + name;
    host.bridge_end = "v-" + name;
    if (!Ip({"netns", "add", host.netns})) return host;
    namespaces_.push_back(host.netns);
    if (!Ip({"-n", bridge_netns_, "link", "add", "name", host.bridge_end, "type", "veth", "peer",
             "name", "eth0", "netns", host.netns}) ||
        !Ip({"-n", bridge_netns_, "link", "set", "dev", host.bridge_end, "master", "br0"}) ||
        !Ip({"-n", bridge_netns_, "link", "set", "dev", host.bridge_end, "up"}) ||
        !Ip({"-n", host.netns, "addr", "add", absl::StrCat(kSubnet, octet, "/24"), "dev",
             "eth0"}) ||
        !Ip({"-n", host.netns, "link", "set", "dev", "eth0", "up"}) ||
        !Ip({"-n", host.netns, "link", "set", "dev", "lo", "up"})) {
      return host;
    }
    host.address = absl::StrCat(kSubnet, octet);
    return host;
  }

  // The cable between `host` and the bridge: unplugged or plugged back in.
  bool SetLink(const Host& host, bool up) {
    return Ip({"-n", bridge_netns_, "link", "set", "dev", host.bridge_end, up ? "up" : "down"});
  }

  // A development CA and one server certificate for every host's address.
  void MakeCertificates() {
    std::vector<std::string> sans = {"IP:" + coordinator_host_.address};
    for (const Host& host : workers_) sans.push_back("IP:" + host.address);
    const std::string script = absl::StrCat(
        "set -e; mkdir -p certs; cd certs\n"
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 "
        "-subj '/CN=Strata test CA' 2>/dev/null\n"
        "openssl req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr "
        "-subj '/CN=strata-host' 2>/dev/null\n"
        "printf 'subjectAltName=",
        absl::StrJoin(sans, ","),
        "\\nbasicConstraints=CA:FALSE\\nkeyUsage=digitalSignature,keyEncipherment\\n"
        "extendedKeyUsage=serverAuth\\n' >ext.cnf\n"
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial "
        "-out server.pem -days 2 -extfile ext.cnf 2>/dev/null\n");
    absl::StatusOr<ProcessResult> made =
        RunProcess({"/bin/bash", "-c", absl::StrCat("cd ", dir_, " && ", script)}, dir_);
    ASSERT_TRUE(made.ok() && made->exit_code == 0) << (made.ok() ? made->err : "");
    ca_ = Absolute(dir_ + "/certs/ca.pem");
    tls_server_ = {"--tls_cert=" + Absolute(dir_ + "/certs/server.pem"),
                   "--tls_key=" + Absolute(dir_ + "/certs/server-key.pem")};
  }

  // `argv` run inside `host`'s namespace.
  std::vector<std::string> In(const Host& host, std::vector<std::string> argv) {
    argv.insert(argv.begin(), {ip_, "netns", "exec", host.netns});
    return argv;
  }

  void StartCoordinator() {
    const std::string port_file = dir_ + "/coordinator.port";
    absl::StatusOr<Subprocess> coordinator = Subprocess::Start(
        In(coordinator_host_,
           {Absolute(kCoordinator), "--listen=" + coordinator_address_, "--port_file=" + port_file,
            "--data_dir=" + dir_ + "/coordinator", "--tokens_file=" + dir_ + "/tokens",
            "--worker_tokens_file=" + dir_ + "/worker-tokens", tls_server_[0], tls_server_[1],
            "--data_roots=/usr/share/common-licenses", "--heartbeat_interval=200ms",
            "--heartbeat_timeout=2s",
            absl::StrCat("--metrics_listen=", coordinator_host_.address, ":", kMetricsPort)}),
        dir_, "coordinator");
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    coordinator_ = std::make_unique<Subprocess>(*std::move(coordinator));
    ASSERT_EQ(WaitForPortFile(port_file, *coordinator_), kCoordinatorPort);
  }

  void StartWorker(const Host& host) {
    const std::string token_file = absl::StrCat(dir_, "/", host.name, ".token");
    std::ofstream(token_file) << host.name << "-token\n";
    const std::string own = absl::StrCat(host.address, ":", kWorkerPort);
    absl::StatusOr<Subprocess> worker = Subprocess::Start(
        In(host, {Absolute(kWorker), "--coordinator=" + coordinator_address_, "--name=" + host.name,
                  "--listen=" + own, "--advertise_address=" + own,
                  absl::StrCat("--metrics_listen=", host.address, ":", kMetricsPort),
                  "--port_file=" + dir_ + "/" + host.name + ".port", "--cores=1",
                  "--labels=host=" + host.name, "--work_dir=" + WorkDir(host.name),
                  "--data_roots=/usr/share/common-licenses", "--train_binary=" + Absolute(kTrain),
                  tls_server_[0], tls_server_[1], "--tls_ca=" + ca_,
                  "--worker_token_file=" + token_file}),
        dir_, host.name);
    ASSERT_TRUE(worker.ok()) << worker.status();
    worker_processes_[host.name] = std::make_unique<Subprocess>(*std::move(worker));
  }

  // The CLI, run on the coordinator's host and talking to its address.
  ProcessResult Cli(std::vector<std::string> args) {
    std::vector<std::string> argv = {Absolute(kCli), "--coordinator=" + coordinator_address_,
                                     "--token_file=" + dir_ + "/alice.token", "--tls_ca=" + ca_};
    argv.insert(argv.end(), args.begin(), args.end());
    absl::StatusOr<ProcessResult> result =
        RunProcess(In(coordinator_host_, argv), dir_, absl::Minutes(5));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : ProcessResult();
  }

  std::string WriteJob(const std::string& name, const std::string& ckpt, int64_t steps, bool zo,
                       int batch, const std::string& resources = "") {
    const std::string path = absl::StrCat(dir_, "/", name, ".yaml");
    std::ofstream(path) << JobYaml(name, ckpt, steps, zo, batch, resources);
    return path;
  }

  static std::string SubmittedId(const ProcessResult& r) {
    const size_t at = r.out.find("submitted job ");
    if (at == std::string::npos) return "";
    const size_t begin = at + 14;
    return r.out.substr(begin, r.out.find_first_of(" \n", begin) - begin);
  }

  // Runs `probe` until `done(probe())` holds (or `timeout` passes, failing the test with the
  // last answer); returns that answer.
  std::string Until(const std::string& what, const std::function<std::string()>& probe,
                    const std::function<bool(const std::string&)>& done,
                    absl::Duration timeout = absl::Minutes(2)) {
    const absl::Time deadline = absl::Now() + timeout;
    std::string last;
    while (absl::Now() < deadline) {
      last = probe();
      if (done(last)) return last;
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << what << " never happened; last:\n" << last;
    return last;
  }

  std::string Describe(const std::string& id) {
    return Cli({"job", "describe", id, "--output=json"}).out;
  }
  std::string Nodes() { return Cli({"node", "list", "--all"}).out; }

  const Host& WorkerHost(const std::string& name) {
    for (const Host& host : workers_) {
      if (host.name == name) return host;
    }
    ADD_FAILURE() << "no host " << name;
    return workers_[0];
  }

  // Worker `name`'s --work_dir: its own, or the one all workers share.
  std::string WorkDir(const std::string& name) const {
    return absl::StrCat(dir_, "/work-", shared_work_dir_ ? "shared" : name);
  }

  // Alice's area on worker `name` (checkpoint.path and job directories resolve there).
  std::string Area(const std::string& name) {
    return absl::StrCat(Absolute(WorkDir(name)), "/users/alice");
  }

  // Every worker registered from its own host, at the address it advertised.
  void AwaitWorkersReady() {
    const std::string nodes = Until(
        "three ready workers", [&] { return Nodes(); },
        [&](const std::string& table) {
          for (const Host& h : workers_) {
            if (NodeState(table, h.name) != "ready") return false;
          }
          return true;
        });
    for (const Host& host : workers_) {
      EXPECT_THAT(nodes, HasSubstr(absl::StrCat(host.address, ":", kWorkerPort))) << nodes;
    }
  }

  // The reference: the ZO job run uninterrupted (checkpoint.path `full`); its exported weights.
  void RunReference(std::string* weights) {
    ProcessResult full = Cli({"job", "submit", WriteJob("full", "full", kZoSteps, true, 32)});
    ASSERT_EQ(full.exit_code, 0) << full.err << full.out;
    const std::vector<std::string> hosts = PlacedOn(Describe(SubmittedId(full)));
    ASSERT_EQ(hosts.size(), 1u);
    *weights = ReadFileOrEmpty(Area(hosts[0]) + "/full/export/model.safetensors");
    ASSERT_GT(weights->size(), 1000u);
  }

  // A ZO job whose worker's cable was pulled part-way.
  struct Partition {
    std::string id;
    std::string victim;      // The worker cut off.
    std::string stale_rank;  // In the command line of the rank it ran (attempt 1).
    int64_t cut_step = 0;    // The job's step when the cable was pulled.
    std::string restarted;   // `job describe` once the job ran again.
    std::string restarted_on;
    bool stale_running_at_restart = false;
    absl::Time cut, lost, running, healed, ready;
  };

  // Submits the ZO job `name` (checkpoint.path `ckpt`, "" for the job's directory), pulls its
  // worker's cable once it passed kCutAfterStep, and waits until the coordinator declared the
  // worker lost and the job runs again on another host.
  void SubmitAndPartition(const std::string& name, const std::string& ckpt, Partition* p) {
    ProcessResult submitted =
        Cli({"job", "submit", WriteJob(name, ckpt, kZoSteps, true, 32), "--detach"});
    ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
    p->id = SubmittedId(submitted);
    ASSERT_FALSE(p->id.empty()) << submitted.out;
    const std::string before = Until(
        "step " + std::to_string(kCutAfterStep), [&] { return Describe(p->id); },
        [](const std::string& j) { return JsonInt(j, "step") >= kCutAfterStep; });
    p->cut_step = JsonInt(before, "step");
    ASSERT_LT(p->cut_step, kZoSteps) << "finished before its link could be cut";
    const std::vector<std::string> first_hosts = PlacedOn(before);
    ASSERT_EQ(first_hosts.size(), 1u);
    p->victim = first_hosts[0];
    p->stale_rank = p->id + "/run-config-a1-r0";
    ASSERT_FALSE(ProcessesWith(p->stale_rank).empty()) << "the first attempt's rank is not running";

    ASSERT_TRUE(SetLink(WorkerHost(p->victim), /*up=*/false));
    p->cut = absl::Now();
    Until(
        p->victim + " lost", [&] { return Nodes(); },
        [&](const std::string& table) { return NodeState(table, p->victim) == "lost"; });
    p->lost = absl::Now();
    p->restarted = Until(
        "the job running again", [&] { return Describe(p->id); },
        [](const std::string& j) {
          return JsonInt(j, "attempt") >= 2 && j.find("\"JOB_STATE_RUNNING\"") != std::string::npos;
        });
    p->running = absl::Now();
    const std::vector<std::string> second_hosts = PlacedOn(p->restarted);
    ASSERT_EQ(second_hosts.size(), 1u);
    p->restarted_on = second_hosts[0];
    EXPECT_NE(p->restarted_on, p->victim);
    // Cut off, the worker cannot hear that its rank belongs to a superseded attempt (on shared
    // storage the rank may have stopped by itself: it saw the new attempt's claim).
    p->stale_running_at_restart = !ProcessesWith(p->stale_rank).empty();
  }

  // Plugs the cable back in once kPartition passed since the cut: the worker is ready again and,
  // back on the network, its stale rank is gone (stopped, unless it stopped by itself) and its
  // exit reported.
  void Heal(Partition* p) {
    // Held past the worker's RPC deadlines: its heartbeats and reports fail, not just wait.
    absl::SleepFor(p->cut + kPartition - absl::Now());
    ASSERT_TRUE(SetLink(WorkerHost(p->victim), /*up=*/true));
    p->healed = absl::Now();
    Until(
        p->victim + " ready again", [&] { return Nodes(); },
        [&](const std::string& table) { return NodeState(table, p->victim) == "ready"; });
    p->ready = absl::Now();
    Until(
        "the stale rank stopped", [&] { return absl::StrJoin(ProcessesWith(p->stale_rank), " "); },
        [](const std::string& pids) { return pids.empty(); }, absl::Seconds(30));
    Until(
        "the stale rank's exit", [&] { return worker_processes_[p->victim]->Stderr(); },
        [&](const std::string& err) {
          return err.find(absl::StrCat(p->id, "/1/0 exited")) != std::string::npos;
        },
        absl::Seconds(30));
  }

  // Job `id` ends with one restart, the reference's weights (`want`) exported into
  // `checkpoints`, and a step log there holding every step once, in order (ReadStepLog refuses
  // gaps and repeats).
  void ExpectCompletedLikeReference(const std::string& id, const std::string& checkpoints,
                                    const std::string& want) {
    ProcessResult waited = Cli({"job", "wait", id});
    EXPECT_EQ(waited.exit_code, 0) << waited.err << waited.out;
    const std::string after = Describe(id);
    // The stale rank's exit and reports changed nothing: one restart, one attempt after it.
    EXPECT_THAT(after, HasSubstr("\"state\": \"JOB_STATE_COMPLETED\""));
    EXPECT_EQ(JsonInt(after, "restarts"), 1) << after;
    EXPECT_EQ(JsonInt(after, "attempt"), 2) << after;
    EXPECT_EQ(JsonInt(after, "step"), kZoSteps) << after;
    const std::string got = ReadFileOrEmpty(checkpoints + "/export/model.safetensors");
    EXPECT_TRUE(want == got) << "weights differ after the partition";
    absl::StatusOr<zo::StepLogContents> steps =
        zo::ReadStepLog(checkpoints + "/steplog.bin", /*num_scalars=*/1);
    ASSERT_TRUE(steps.ok()) << steps.status();
    ASSERT_EQ(steps->records.size(), static_cast<size_t>(kZoSteps));
    EXPECT_EQ(steps->records.front().step, 1);
    EXPECT_EQ(steps->torn_tail_bytes, 0);
  }

  // How long the partition's stages took, for the test's output.
  std::string Timings(const Partition& p) const {
    return absl::StrFormat(
        "partition_to_lost_s=%.2f restart_s=%.2f heal_s=%.2f (cut at step %d; stale rank %s "
        "when the job ran again)",
        absl::ToDoubleSeconds(p.lost - p.cut), absl::ToDoubleSeconds(p.running - p.lost),
        absl::ToDoubleSeconds(p.ready - p.healed), p.cut_step,
        p.stale_running_at_restart ? "running" : "gone");
  }

  // Stops the coordinator as an operator would (SIGTERM), so its store is closed.
  void StopCoordinator() {
    ASSERT_TRUE(coordinator_->Signal(SIGTERM).ok());
    absl::StatusOr<ProcessResult> exited = coordinator_->Wait(absl::Seconds(30));
    ASSERT_TRUE(exited.ok()) << exited.status();
    EXPECT_EQ(exited->exit_code, 0) << coordinator_->Stderr();
  }

  bool shared_work_dir_ = false;  // Set by a fixture before SetUp.
  std::string ip_, dir_, bridge_netns_, ca_, coordinator_address_;
  std::vector<std::string> namespaces_;  // Made by this run: removed in TearDown.
  std::vector<std::string> tls_server_;
  Host coordinator_host_;
  std::vector<Host> workers_;
  std::unique_ptr<Subprocess> coordinator_;
  std::map<std::string, std::unique_ptr<Subprocess>> worker_processes_;
};

TEST_F(MultiHostTest, AJobOutlivesAPartitionedWorkerWhichThenRejoins) {
  AwaitWorkersReady();

  // Two ranks on two hosts (one core each): they meet through the coordinator's store and
  // all-reduce over Gloo between the hosts' addresses.
  ProcessResult dp =
      Cli({"job", "submit", WriteJob("dp", "", 20, /*zo=*/false, 1), "--config=resources.ranks=2"});
  ASSERT_EQ(dp.exit_code, 0) << dp.err << dp.out;
  EXPECT_THAT(dp.out, HasSubstr("COMPLETED after 20 steps"));
  const std::vector<std::string> dp_hosts = PlacedOn(Describe(SubmittedId(dp)));
  ASSERT_EQ(dp_hosts.size(), 2u);
  EXPECT_NE(dp_hosts[0], dp_hosts[1]);
  EXPECT_THAT(Cli({"job", "logs", SubmittedId(dp), "--rank=1"}).out,
              HasSubstr("data parallel: rank 1 of 2, ZeRO stage 0, met through the coordinator"));

  std::string want;
  ASSERT_NO_FATAL_FAILURE(RunReference(&want));

  // The same job again, checkpointing into its job directory; its worker's cable is pulled
  // part-way.
  Partition p;
  ASSERT_NO_FATAL_FAILURE(SubmitAndPartition("victim", "", &p));
  ASSERT_NO_FATAL_FAILURE(Heal(&p));

  ASSERT_NO_FATAL_FAILURE(ExpectCompletedLikeReference(
      p.id, absl::StrCat(Area(p.restarted_on), "/jobs/", p.id, "/checkpoints"), want));
  const std::string logs = Cli({"job", "logs", p.id}).out;
  EXPECT_THAT(logs, HasSubstr("worker " + p.victim + " lost"));
  // Every step up to the cut came back from the coordinator's step log.
  const size_t at = logs.find("[rank 0] replayed ");
  ASSERT_NE(at, std::string::npos) << logs;
  int64_t replayed = 0;
  ASSERT_TRUE(absl::SimpleAtoi(logs.substr(at + 18, logs.find(' ', at + 18) - at - 18), &replayed));
  EXPECT_GE(replayed, p.cut_step);

  // The rejoined worker takes new work.
  ProcessResult again =
      Cli({"job", "submit",
           WriteJob("after", "", 20, true, 2, ", node_selector: {host: " + p.victim + "}")});
  EXPECT_EQ(again.exit_code, 0) << again.err << again.out;
  EXPECT_THAT(PlacedOn(Describe(SubmittedId(again))), ::testing::ElementsAre(p.victim));

  const std::string timings =
      absl::StrCat("multihost: ", Timings(p), "; ", replayed, " steps replayed");
  std::cout << timings << std::endl;
  RecordProperty("multihost", timings);
}

// All workers share one --work_dir (a shared file system): a job's relative checkpoint.path is
// one directory whichever worker runs it.
class MultiHostSharedStorageTest : public MultiHostTest {
 protected:
  MultiHostSharedStorageTest() { shared_work_dir_ = true; }
};

// The step-log records the coordinator's store (SQLite at `db`, opened read-only) holds for job
// `id`, by step.
absl::StatusOr<std::map<int64_t, v1::ZoStepRecord>> StoredSteps(const std::string& db,
                                                                const std::string& id) {
  sqlite3* handle = nullptr;
  if (sqlite3_open_v2(db.c_str(), &handle, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    const std::string why = handle != nullptr ? sqlite3_errmsg(handle) : "out of memory";
    sqlite3_close(handle);
    return absl::UnavailableError(absl::StrCat(db, ": ", why));
  }
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> closing(handle, sqlite3_close);
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(handle, "SELECT step, record FROM step_log WHERE job_id = ?1", -1, &raw,
                         nullptr) != SQLITE_OK) {
    return absl::InternalError(absl::StrCat(db, ": ", sqlite3_errmsg(handle)));
  }
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> query(raw, sqlite3_finalize);
  sqlite3_bind_text(raw, 1, id.c_str(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
  std::map<int64_t, v1::ZoStepRecord> steps;
  int rc;
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    const int64_t step = sqlite3_column_int64(raw, 0);
    if (!steps[step].ParseFromArray(sqlite3_column_blob(raw, 1), sqlite3_column_bytes(raw, 1))) {
      return absl::DataLossError(absl::StrCat(db, ": step ", step, " of ", id, " does not parse"));
    }
  }
  if (rc != SQLITE_DONE) return absl::InternalError(absl::StrCat(db, ": ", sqlite3_errmsg(handle)));
  return steps;
}

TEST_F(MultiHostSharedStorageTest, APartitionedRankStopsWithoutWritingTheSharedCheckpoints) {
  AwaitWorkersReady();
  std::string want;
  ASSERT_NO_FATAL_FAILURE(RunReference(&want));

  // Every attempt of the job resolves checkpoint.path `shared-ckpt` to one directory.
  Partition p;
  ASSERT_NO_FATAL_FAILURE(SubmitAndPartition("victim", "shared-ckpt", &p));
  const std::string ckpt = Area(p.victim) + "/shared-ckpt";
  ASSERT_EQ(ckpt, Area(p.restarted_on) + "/shared-ckpt");
  // The new attempt claims the directory and trains on there while the old rank, cut off,
  // cannot hear that its attempt was superseded.
  const std::string claimed = p.id + " 2\n";
  Until(
      "attempt 2 claiming " + ckpt, [&] { return ReadFileOrEmpty(ckpt + "/ATTEMPT"); },
      [&](const std::string& text) { return text == claimed; }, absl::Seconds(30));
  const int64_t restart_step = JsonInt(p.restarted, "step");
  Until(
      "attempt 2 training", [&] { return Describe(p.id); },
      [&](const std::string& j) {
        return JsonInt(j, "attempt") == 2 && JsonInt(j, "step") >= restart_step + 100;
      },
      absl::Seconds(60));
  absl::SleepFor(p.cut + kPartition - absl::Now());
  const std::string at_heal = Describe(p.id);
  ASSERT_NO_FATAL_FAILURE(Heal(&p));

  ASSERT_NO_FATAL_FAILURE(ExpectCompletedLikeReference(p.id, ckpt, want));
  EXPECT_EQ(ReadFileOrEmpty(ckpt + "/ATTEMPT"), claimed);
  // The new attempt went on from the shared directory's checkpoint and step log.
  const std::string logs = Cli({"job", "logs", p.id}).out;
  const size_t resumed = logs.find("[rank 0] resumed from ");
  ASSERT_NE(resumed, std::string::npos) << logs;
  EXPECT_THAT(logs.substr(resumed, logs.find('\n', resumed) - resumed),
              HasSubstr("/shared-ckpt/ckpt-"));

  // The old rank stopped without writing: either it saw the claim before its next write (its
  // output, in the shared job directory's rank0.log, says so), or it was still waiting on its
  // reports when the cable came back and the coordinator had it stopped, or a checkpoint it was
  // writing when the new attempt claimed the directory failed (the new attempt clears
  // unfinished checkpoints) and it exited. In every case the step log above holds each step
  // once: it wrote nothing after the claim.
  const std::string rank_log = ReadFileOrEmpty(Area(p.victim) + "/jobs/" + p.id + "/rank0.log");
  const std::string worker_log = worker_processes_[p.victim]->Stderr();
  const std::string key = p.id + "/1/0";
  const size_t fence_at =
      rank_log.find(absl::StrCat("; attempt 1 of job ", p.id, " stops without writing"));
  const bool fenced = fence_at != std::string::npos;
  if (fenced) {
    const size_t line = rank_log.rfind('\n', fence_at) + 1;  // npos + 1 == 0: the first line.
    EXPECT_THAT(rank_log.substr(line, fence_at - line),
                ::testing::EndsWith("attempt 2 of the job now writes here (" + ckpt + "/ATTEMPT)"));
  }
  const bool stopped = worker_log.find(key + " exited: code ") != std::string::npos;
  EXPECT_TRUE(fenced || stopped) << "rank0.log:\n" << rank_log << "\nworker:\n" << worker_log;
  EXPECT_THAT(rank_log, Not(HasSubstr("attempt 2 of job " + p.id + " stops without writing")));

  // The coordinator's step log holds every step, each the record of the shared step log: the
  // steps the old rank logged but could not report were handed on by the new attempt.
  absl::StatusOr<zo::StepLogContents> local =
      zo::ReadStepLog(ckpt + "/steplog.bin", /*num_scalars=*/1);
  ASSERT_TRUE(local.ok()) << local.status();
  ASSERT_NO_FATAL_FAILURE(StopCoordinator());
  absl::StatusOr<std::map<int64_t, v1::ZoStepRecord>> stored =
      StoredSteps(dir_ + "/coordinator/jobs.db", p.id);
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_EQ(stored->size(), static_cast<size_t>(kZoSteps));
  EXPECT_EQ(stored->begin()->first, 1);
  EXPECT_EQ(stored->rbegin()->first, kZoSteps);
  for (const zo::ZoStepRecord& record : local->records) {
    auto it = stored->find(record.step);
    ASSERT_NE(it, stored->end()) << "step " << record.step;
    EXPECT_EQ(it->second.seed(), record.seed) << "step " << record.step;
    ASSERT_EQ(it->second.projected_grads_size(), 1) << "step " << record.step;
    EXPECT_EQ(it->second.projected_grads(0), static_cast<double>(record.scalars[0]))
        << "step " << record.step;
  }

  const std::string timings = absl::StrCat("multihost shared storage: ", Timings(p), "; at step ",
                                           JsonInt(at_heal, "step"), " when healed; stale rank ",
                                           fenced ? "saw the claim" : "stopped by the coordinator");
  std::cout << timings << std::endl;
  RecordProperty("multihost_shared_storage", timings);
}

}  // namespace
}  // namespace strata
