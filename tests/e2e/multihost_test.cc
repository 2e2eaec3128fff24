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
// Namespaces, bridge and links are named after the test's pid and removed in TearDown;
// leftovers of runs that died before their TearDown are removed at the next start. The test
// is skipped (with the reason) only where the machine cannot make the network: no `ip`, not
// root (CAP_SYS_ADMIN and CAP_NET_ADMIN), or a kernel without bridges.
#include <dirent.h>
#include <signal.h>
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
#include "runtime/zo/step_log.h"
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

std::string Absolute(const std::string& path) {
  char resolved[PATH_MAX];
  return realpath(path.c_str(), resolved) != nullptr ? resolved : path;
}

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
                  "--labels=host=" + host.name, "--work_dir=" + dir_ + "/work-" + host.name,
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

  // Alice's area on worker `name` (checkpoint.path and job directories resolve there).
  std::string Area(const std::string& name) {
    return absl::StrCat(Absolute(dir_), "/work-", name, "/users/alice");
  }

  std::string ip_, dir_, bridge_netns_, ca_, coordinator_address_;
  std::vector<std::string> namespaces_;  // Made by this run: removed in TearDown.
  std::vector<std::string> tls_server_;
  Host coordinator_host_;
  std::vector<Host> workers_;
  std::unique_ptr<Subprocess> coordinator_;
  std::map<std::string, std::unique_ptr<Subprocess>> worker_processes_;
};

TEST_F(MultiHostTest, AJobOutlivesAPartitionedWorkerWhichThenRejoins) {
  // Every worker registered from its own host, at the address it advertised.
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

  // The reference: the ZO job uninterrupted.
  ProcessResult full = Cli({"job", "submit", WriteJob("full", "full", kZoSteps, true, 32)});
  ASSERT_EQ(full.exit_code, 0) << full.err << full.out;
  const std::vector<std::string> full_hosts = PlacedOn(Describe(SubmittedId(full)));
  ASSERT_EQ(full_hosts.size(), 1u);
  const std::string want = ReadFileOrEmpty(Area(full_hosts[0]) + "/full/export/model.safetensors");
  ASSERT_GT(want.size(), 1000u);

  // The same job again; its worker's cable is pulled part-way.
  ProcessResult submitted =
      Cli({"job", "submit", WriteJob("victim", "", kZoSteps, true, 32), "--detach"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string id = SubmittedId(submitted);
  ASSERT_FALSE(id.empty()) << submitted.out;
  const std::string before = Until(
      "step " + std::to_string(kCutAfterStep), [&] { return Describe(id); },
      [](const std::string& j) { return JsonInt(j, "step") >= kCutAfterStep; });
  const int64_t cut_step = JsonInt(before, "step");
  ASSERT_LT(cut_step, kZoSteps) << "finished before its link could be cut";
  const std::vector<std::string> first_hosts = PlacedOn(before);
  ASSERT_EQ(first_hosts.size(), 1u);
  const Host& victim = WorkerHost(first_hosts[0]);
  const std::string stale_rank = id + "/run-config-a1-r0";
  ASSERT_FALSE(ProcessesWith(stale_rank).empty()) << "the first attempt's rank is not running";

  ASSERT_TRUE(SetLink(victim, /*up=*/false));
  const absl::Time cut = absl::Now();
  Until(
      victim.name + " lost", [&] { return Nodes(); },
      [&](const std::string& table) { return NodeState(table, victim.name) == "lost"; });
  const absl::Time lost = absl::Now();
  const std::string restarted = Until(
      "the job running again", [&] { return Describe(id); },
      [](const std::string& j) {
        return JsonInt(j, "attempt") >= 2 && j.find("\"JOB_STATE_RUNNING\"") != std::string::npos;
      });
  const absl::Time running = absl::Now();
  const std::vector<std::string> second_hosts = PlacedOn(restarted);
  ASSERT_EQ(second_hosts.size(), 1u);
  EXPECT_NE(second_hosts[0], victim.name);
  // Cut off, the worker cannot hear that its rank belongs to a superseded attempt.
  const bool stale_ran_through_partition = !ProcessesWith(stale_rank).empty();

  // Held past the worker's RPC deadlines: its heartbeats and reports fail, not just wait.
  absl::SleepFor(cut + kPartition - absl::Now());
  ASSERT_TRUE(SetLink(victim, /*up=*/true));
  const absl::Time healed = absl::Now();
  Until(
      victim.name + " ready again", [&] { return Nodes(); },
      [&](const std::string& table) { return NodeState(table, victim.name) == "ready"; });
  const absl::Time ready = absl::Now();
  // Back on the network, it is told to stop the stale rank.
  Until(
      "the stale rank stopped", [&] { return absl::StrJoin(ProcessesWith(stale_rank), " "); },
      [](const std::string& pids) { return pids.empty(); }, absl::Seconds(30));
  Until(
      "the stale rank's exit", [&] { return worker_processes_[victim.name]->Stderr(); },
      [&](const std::string& err) {
        return err.find(absl::StrCat(id, "/1/0 exited")) != std::string::npos;
      },
      absl::Seconds(30));

  ProcessResult waited = Cli({"job", "wait", id});
  EXPECT_EQ(waited.exit_code, 0) << waited.err << waited.out;
  const std::string after = Describe(id);
  // The stale rank's exit and reports changed nothing: one restart, one attempt after it.
  EXPECT_THAT(after, HasSubstr("\"state\": \"JOB_STATE_COMPLETED\""));
  EXPECT_EQ(JsonInt(after, "restarts"), 1) << after;
  EXPECT_EQ(JsonInt(after, "attempt"), 2) << after;
  EXPECT_EQ(JsonInt(after, "step"), kZoSteps) << after;
  const std::string checkpoints = absl::StrCat(Area(second_hosts[0]), "/jobs/", id, "/checkpoints");
  const std::string got = ReadFileOrEmpty(checkpoints + "/export/model.safetensors");
  EXPECT_TRUE(want == got) << "weights differ after the partition";
  // The run's step log holds every step once, in order (ReadStepLog refuses gaps and repeats).
  absl::StatusOr<zo::StepLogContents> steps =
      zo::ReadStepLog(checkpoints + "/steplog.bin", /*num_scalars=*/1);
  ASSERT_TRUE(steps.ok()) << steps.status();
  ASSERT_EQ(steps->records.size(), static_cast<size_t>(kZoSteps));
  EXPECT_EQ(steps->records.front().step, 1);
  EXPECT_EQ(steps->torn_tail_bytes, 0);
  const std::string logs = Cli({"job", "logs", id}).out;
  EXPECT_THAT(logs, HasSubstr("worker " + victim.name + " lost"));
  // Every step up to the cut came back from the coordinator's step log.
  const size_t at = logs.find("[rank 0] replayed ");
  ASSERT_NE(at, std::string::npos) << logs;
  int64_t replayed = 0;
  ASSERT_TRUE(absl::SimpleAtoi(logs.substr(at + 18, logs.find(' ', at + 18) - at - 18), &replayed));
  EXPECT_GE(replayed, cut_step);

  // The rejoined worker takes new work.
  ProcessResult again =
      Cli({"job", "submit",
           WriteJob("after", "", 20, true, 2, ", node_selector: {host: " + victim.name + "}")});
  EXPECT_EQ(again.exit_code, 0) << again.err << again.out;
  EXPECT_THAT(PlacedOn(Describe(SubmittedId(again))), ::testing::ElementsAre(victim.name));

  const std::string timings = absl::StrFormat(
      "multihost: partition_to_lost_s=%.2f restart_s=%.2f heal_s=%.2f (cut at step %d, %d "
      "replayed; stale rank %s through the partition)",
      absl::ToDoubleSeconds(lost - cut), absl::ToDoubleSeconds(running - lost),
      absl::ToDoubleSeconds(ready - healed), cut_step, replayed,
      stale_ran_through_partition ? "ran" : "did not run");
  std::cout << timings << std::endl;
  RecordProperty("multihost", timings);
}

}  // namespace
}  // namespace strata
