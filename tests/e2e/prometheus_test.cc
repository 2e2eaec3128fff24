// Strata's metrics as a real Prometheus sees them: a coordinator and a worker (real processes,
// plaintext on loopback), an offloaded ZO job (blocks on the worker's NVMe directory) and a
// federated job with one strata-edge client, scraped every second by Debian's
// /usr/bin/prometheus with deploy/prometheus/strata-rules.yml loaded. Through Prometheus' HTTP
// API: every series docs/metrics.md lists is scraped with the documented type (a series of task
// jobs only when present: the run has no task job); jobs by state, workers, the step and its
// rate, tokens/s, offload bytes, NVMe space and the federated figures have the values the run
// implies (a failed round once the client is killed); the rule groups loaded and every rule
// evaluates without error, none firing; and every metric named by a query
// of deploy/grafana/strata.json exists, and every panel query returns data. Skipped only when
// Prometheus is not installed.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/subprocess.h"

namespace strata {
namespace {

using ::nlohmann::json;
using ::strata::testing::Absolute;
using ::strata::testing::ProcessResult;
using ::strata::testing::ReadFileOrEmpty;
using ::strata::testing::RunProcess;
using ::strata::testing::Subprocess;
using ::strata::testing::TestTmpDir;
using ::strata::testing::WaitForPortFile;
using ::testing::IsEmpty;

constexpr char kPrometheus[] = "/usr/bin/prometheus";
constexpr char kCoordinator[] = "services/coordinator/strata-coordinator";
constexpr char kWorker[] = "services/worker/strata-worker";
constexpr char kCli[] = "services/cli/strata";
constexpr char kEdge[] = "services/edge/strata-edge";
constexpr char kTrain[] = "services/trainer/strata-train";
constexpr char kRules[] = "deploy/prometheus/strata-rules.yml";
constexpr char kDashboard[] = "deploy/grafana/strata.json";
constexpr char kMetricsDoc[] = "docs/metrics.md";
// Documented series that exist only for jobs with a task (JobSpec.task), which this run does
// not submit.
const std::set<std::string> kTaskJobSeries = {"strata_job_eval_metric"};

// The metric names (strata_*) an expression mentions.
std::set<std::string> MetricNamesIn(const std::string& expr) {
  static const std::regex kName("strata_[a-zA-Z0-9_]+");
  std::set<std::string> names;
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), kName);
       it != std::sregex_iterator(); ++it) {
    names.insert(it->str());
  }
  return names;
}

// Every panel query ("expr" of each target, rows' nested panels included) of a Grafana
// dashboard, and every query of its template variables.
struct DashboardQueries {
  std::vector<std::string> panel_exprs;
  std::vector<std::string> variable_queries;
};

void CollectPanelExprs(const json& panels, std::vector<std::string>* out) {
  if (!panels.is_array()) return;
  for (const json& panel : panels) {
    if (panel.contains("targets") && panel["targets"].is_array()) {
      for (const json& target : panel["targets"]) {
        if (target.contains("expr") && target["expr"].is_string()) out->push_back(target["expr"]);
      }
    }
    if (panel.contains("panels")) CollectPanelExprs(panel["panels"], out);
  }
}

DashboardQueries QueriesOf(const json& dashboard) {
  DashboardQueries queries;
  if (dashboard.contains("panels")) CollectPanelExprs(dashboard["panels"], &queries.panel_exprs);
  if (dashboard.contains("templating") && dashboard["templating"].contains("list")) {
    for (const json& variable : dashboard["templating"]["list"]) {
      if (variable.value("type", "") != "query") continue;
      const json& query = variable["query"];
      if (query.is_string()) queries.variable_queries.push_back(query);
      if (query.is_object() && query.contains("query")) {
        queries.variable_queries.push_back(query["query"]);
      }
    }
  }
  return queries;
}

// The names `queries` use that are not among `scraped` (metric names as Prometheus stores them:
// a histogram family X appears as X_bucket, X_sum and X_count), as "name (in: query)".
std::vector<std::string> UnknownNames(const DashboardQueries& queries,
                                      const std::set<std::string>& scraped) {
  std::vector<std::string> unknown;
  std::vector<std::string> all = queries.panel_exprs;
  all.insert(all.end(), queries.variable_queries.begin(), queries.variable_queries.end());
  for (const std::string& expr : all) {
    for (const std::string& name : MetricNamesIn(expr)) {
      if (scraped.count(name) == 0) unknown.push_back(absl::StrCat(name, " (in: ", expr, ")"));
    }
  }
  return unknown;
}

// A panel query as Prometheus can run it: Grafana's variables replaced.
std::string Runnable(const std::string& expr) {
  return absl::StrReplaceAll(
      expr,
      {{"$__rate_interval", "15s"}, {"$__interval", "5s"}, {"${job_id}", ".*"}, {"$job_id", ".*"}});
}

// The documented series of docs/metrics.md: name -> type, from the tables' rows.
std::map<std::string, std::string> DocumentedSeries(const std::string& markdown) {
  std::map<std::string, std::string> series;
  for (absl::string_view line : absl::StrSplit(markdown, '\n')) {
    if (!absl::ConsumePrefix(&line, "| `strata_")) continue;
    std::vector<std::string> cells = absl::StrSplit(line, '|');
    if (cells.size() < 2) continue;
    const std::string name = "strata_" + cells[0].substr(0, cells[0].find('`'));
    series[name] = std::string(absl::StripAsciiWhitespace(cells[1]));
  }
  return series;
}

// Names of the groups and alerts in a Prometheus rule file (`- name:` / `- alert:` lines).
std::set<std::string> RuleFileNames(const std::string& yaml, const std::string& key) {
  std::set<std::string> names;
  const std::regex line("^\\s*- " + key + ":\\s*(\\S+)\\s*$");
  for (absl::string_view view : absl::StrSplit(yaml, '\n')) {
    const std::string l(view);
    std::smatch m;
    if (std::regex_match(l, m, line)) names.insert(m[1]);
  }
  return names;
}

TEST(DashboardCheckTest, FindsEveryQueryAndNamesUnknownMetrics) {
  const json dashboard = json::parse(R"json({
    "panels": [
      {"type": "row", "panels": [{"targets": [
        {"expr": "rate(strata_train_tokens_total{job_id=~\"$job_id\"}[$__rate_interval])"}]}]},
      {"targets": [
        {"expr": "histogram_quantile(0.9, rate(strata_x_seconds_bucket[5m]))"},
        {"expr": "strata_renamed_metric / strata_worker_nvme_capacity_bytes"}]}],
    "templating": {"list": [
      {"type": "datasource", "query": "prometheus"},
      {"type": "query", "query": {"query": "label_values(strata_train_step, job_id)"}}]}
  })json");
  const DashboardQueries queries = QueriesOf(dashboard);
  EXPECT_EQ(queries.panel_exprs.size(), 3u);
  EXPECT_EQ(queries.variable_queries.size(), 1u);
  const std::set<std::string> scraped = {"strata_train_tokens_total", "strata_x_seconds_bucket",
                                         "strata_x_seconds_count",
                                         "strata_worker_nvme_capacity_bytes", "strata_train_step"};
  const std::vector<std::string> unknown = UnknownNames(queries, scraped);
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_THAT(unknown[0], ::testing::StartsWith("strata_renamed_metric (in: "));
  EXPECT_EQ(Runnable(queries.panel_exprs[0]),
            "rate(strata_train_tokens_total{job_id=~\".*\"}[15s])");
}

TEST(DashboardCheckTest, ReadsTheDocumentedSeries) {
  const std::map<std::string, std::string> series = DocumentedSeries(
      "| name | type |\n|---|---|\n| `strata_a_total` | counter | `job_id` | x |\n"
      "| `strata_b_seconds` | histogram | | y |\ntext `strata_c` in prose\n");
  EXPECT_THAT(series, ::testing::ElementsAre(::testing::Pair("strata_a_total", "counter"),
                                             ::testing::Pair("strata_b_seconds", "histogram")));
}

class PrometheusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kPrometheus, X_OK) != 0) {
      GTEST_SKIP() << kPrometheus << " is not installed (Debian package prometheus)";
    }
    dir_ = absl::StrCat(TestTmpDir(), "/",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_EQ(mkdir(dir_.c_str(), 0755), 0) << dir_;
  }

  void StartCluster() {
    absl::StatusOr<Subprocess> coordinator = Subprocess::Start(
        {kCoordinator, "--listen=localhost:0", "--port_file=" + dir_ + "/coordinator.port",
         "--data_dir=" + dir_ + "/coordinator", "--heartbeat_interval=200ms",
         "--heartbeat_timeout=2s", "--serve_plaintext", "--allow_unauthenticated_workers",
         "--open_enrollment", "--client_online_window=3s", "--client_rate_limit=5",
         "--data_roots=/usr/share/common-licenses", "--metrics_listen=127.0.0.1:0",
         "--metrics_port_file=" + dir_ + "/coordinator.metrics"},
        dir_, "coordinator");
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    coordinator_ = std::make_unique<Subprocess>(*std::move(coordinator));
    const int port = WaitForPortFile(dir_ + "/coordinator.port", *coordinator_);
    ASSERT_GT(port, 0);
    address_ = absl::StrCat("localhost:", port);
    coordinator_metrics_ = WaitForPortFile(dir_ + "/coordinator.metrics", *coordinator_);
    ASSERT_GT(coordinator_metrics_, 0);

    nvme_ = dir_ + "/nvme";
    absl::StatusOr<Subprocess> worker = Subprocess::Start(
        {kWorker, "--coordinator=" + address_, "--name=alpha", "--listen=localhost:0", "--cores=1",
         "--work_dir=" + dir_ + "/work", "--data_roots=/usr/share/common-licenses",
         "--train_binary=" + Absolute(kTrain), "--advertise_address=127.0.0.1:7071", "--insecure",
         "--serve_plaintext", "--nvme_paths=" + nvme_, "--metrics_listen=127.0.0.1:0",
         "--metrics_port_file=" + dir_ + "/worker.metrics"},
        dir_, "worker");
    ASSERT_TRUE(worker.ok()) << worker.status();
    worker_ = std::make_unique<Subprocess>(*std::move(worker));
    worker_metrics_ = WaitForPortFile(dir_ + "/worker.metrics", *worker_);
    ASSERT_GT(worker_metrics_, 0);
    // Registered: the worker says it is ready.
    httplib::Client http("127.0.0.1", worker_metrics_);
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      auto ready = http.Get("/readyz");
      if (ready && ready->status == 200) return;
      absl::SleepFor(absl::Milliseconds(100));
    }
    FAIL() << "the worker never registered; stderr:\n" << worker_->Stderr();
  }

  // Prometheus on a free loopback port, scraping both daemons every second with the rules.
  void StartPrometheus() {
    const std::string config = dir_ + "/prometheus.yml";
    std::ofstream(config) << absl::StrCat(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "rule_files:\n  - ",
        Absolute(kRules),
        "\nscrape_configs:\n"
        "  - job_name: strata-coordinator\n    static_configs:\n      - targets: ['127.0.0.1:",
        coordinator_metrics_,
        "']\n"
        "  - job_name: strata-worker\n    static_configs:\n      - targets: ['127.0.0.1:",
        worker_metrics_, "']\n");
    std::string tried;  // Another process may take the free port first: try again.
    for (int attempt = 0; attempt < 3; ++attempt) {
      prometheus_port_ = FreePort();
      ASSERT_GT(prometheus_port_, 0);
      absl::StatusOr<Subprocess> prometheus = Subprocess::Start(
          {kPrometheus, "--config.file=" + config, "--storage.tsdb.path=" + dir_ + "/tsdb",
           absl::StrCat("--web.listen-address=127.0.0.1:", prometheus_port_), "--log.level=warn"},
          dir_, absl::StrCat("prometheus", attempt));
      ASSERT_TRUE(prometheus.ok()) << prometheus.status();
      prometheus_ = std::make_unique<Subprocess>(*std::move(prometheus));
      httplib::Client http("127.0.0.1", prometheus_port_);
      const absl::Time deadline = absl::Now() + absl::Seconds(30);
      while (absl::Now() < deadline) {
        auto ready = http.Get("/-/ready");
        if (ready && ready->status == 200) return;
        if (prometheus_->Wait(absl::Milliseconds(100)).ok()) break;  // Exited: port taken?
      }
      absl::StrAppend(&tried, "port ", prometheus_port_, ":\n", prometheus_->Stderr(), "\n");
      prometheus_.reset();
    }
    FAIL() << "Prometheus did not become ready:\n" << tried;
  }

  static int FreePort() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    int port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    close(fd);
    return port;
  }

  // `strata job submit --detach` of `yaml`; the job id.
  std::string Submit(const std::string& name, const std::string& yaml) {
    const std::string path = absl::StrCat(dir_, "/", name, ".yaml");
    std::ofstream(path) << yaml;
    absl::StatusOr<ProcessResult> r = RunProcess(
        {kCli, "--coordinator=" + address_, "--insecure", "job", "submit", path, "--detach"}, dir_);
    EXPECT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->err + r->out : "");
    if (!r.ok()) return "";
    const size_t at = r->out.find("submitted job ");
    if (at == std::string::npos) return "";
    return r->out.substr(at + 14, r->out.find(' ', at + 14) - at - 14);
  }

  // GET `path` of Prometheus' API: its "data", or null (and a test failure) on any error.
  json Api(const std::string& path, const httplib::Params& params = {}) {
    httplib::Client http("127.0.0.1", prometheus_port_);
    http.set_read_timeout(10, 0);
    auto response = http.Get(path.c_str(), params, httplib::Headers{});
    if (!response) {
      ADD_FAILURE() << "GET " << path << ": " << httplib::to_string(response.error());
      return nullptr;
    }
    json body = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
    if (response->status != 200 || !body.is_object() || body.value("status", "") != "success") {
      ADD_FAILURE() << "GET " << path << " " << (params.empty() ? "" : params.begin()->second)
                    << ": HTTP " << response->status << " " << response->body;
      return nullptr;
    }
    return body["data"];
  }

  // The instant vector `expr` evaluates to: labels (as JSON text) -> value.
  std::map<std::string, double> Query(const std::string& expr) {
    std::map<std::string, double> samples;
    const json data = Api("/api/v1/query", {{"query", expr}});
    if (data.is_null() || data.value("resultType", "") != "vector") return samples;
    for (const json& r : data["result"]) {
      samples[r["metric"].dump()] = std::stod(r["value"][1].get<std::string>());
    }
    return samples;
  }

  // Polls `expr` until it returns at least one sample (an alerting-style filter such as
  // `x > 0`), up to `timeout`; the last result.
  std::map<std::string, double> QueryUntilPresent(const std::string& expr,
                                                  absl::Duration timeout = absl::Seconds(60)) {
    const absl::Time deadline = absl::Now() + timeout;
    std::map<std::string, double> samples;
    while (absl::Now() < deadline) {
      samples = Query(expr);
      if (!samples.empty()) return samples;
      absl::SleepFor(absl::Milliseconds(500));
    }
    ADD_FAILURE() << "`" << expr << "` returned nothing within " << timeout;
    return samples;
  }

  std::set<std::string> ScrapedNames() {
    const json data = Api("/api/v1/label/__name__/values");
    std::set<std::string> names;
    if (data.is_array()) {
      for (const json& name : data) names.insert(name.get<std::string>());
    }
    return names;
  }

  std::string dir_, address_, nvme_;
  int coordinator_metrics_ = 0, worker_metrics_ = 0, prometheus_port_ = 0;
  std::unique_ptr<Subprocess> coordinator_, worker_, prometheus_;
};

TEST_F(PrometheusTest, ScrapesEveryDocumentedSeriesLoadsTheRulesAndFeedsTheDashboard) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  ASSERT_NO_FATAL_FAILURE(StartPrometheus());
  const std::string model =
      absl::StrCat("model:\n  config_json: '", ::strata::testing::kTinyLlamaConfigJson, "'\n");
  // Offloaded ZO: blocks on the worker's NVMe directory; an evaluation every 20 steps.
  const std::string zo = Submit(
      "zo", absl::StrCat("name: prom-zo\n", model,
                         "data: {train_paths: [/usr/share/common-licenses/GPL-3], batch_size: 2, "
                         "seq_len: 16, eval_batches: 1}\n"
                         "optimizer:\n  zeroth_order: {lr: 1e-4, epsilon: 1e-3}\n"
                         "training: {max_steps: 100000000, log_interval: 5, eval_interval: 20, "
                         "threads: 1, seed: 3}\n"
                         "offload: {param_tier: TIER_NVME}\n"
                         "resources: {cores_per_rank: 1}\n"));
  ASSERT_FALSE(zo.empty());
  // Federated: one client is enough for a round; a round it never answers fails in 5 s. The
  // client runs rounds back to back (no call-rate limit: it would be refused and exit).
  const std::string fed =
      Submit("fed", absl::StrCat("name: prom-fed\n", model,
                                 "data: {batch_size: 2, seq_len: 16}\n"
                                 "optimizer:\n  zeroth_order: {lr: 2e-3, epsilon: 1e-3}\n"
                                 "training: {seed: 11}\n"
                                 "federated: {num_rounds: 100000, num_candidate_seeds: 64, "
                                 "local_steps: 20, min_available_nodes: 1, min_replies: 1, "
                                 "round_timeout: 5s}\n"));
  ASSERT_FALSE(fed.empty());
  absl::StatusOr<Subprocess> edge = Subprocess::Start(
      {kEdge, "--coordinator=" + address_, "--insecure", "--allow_token_over_plaintext",
       "--job=" + fed, "--client_id=edge-1", "--data=/usr/share/common-licenses/Apache-2.0",
       "--state_dir=" + dir_ + "/edge"},
      dir_, "edge");
  ASSERT_TRUE(edge.ok()) << edge.status();
  const std::string zo_job = absl::StrCat("job_id=\"", zo, "\"");
  const std::string fed_job = absl::StrCat("job_id=\"", fed, "\"");

  // Both targets up, and the cluster as the coordinator counts it.
  QueryUntilPresent("count(up == 1) == 2");
  QueryUntilPresent("strata_jobs{state=\"RUNNING\"} == 2");
  QueryUntilPresent("strata_jobs_running == 2 and on() strata_jobs_queued == 0");
  QueryUntilPresent("strata_workers{state=\"ready\"} == 1");
  QueryUntilPresent("strata_workers{state=\"lost\"} == 0");
  QueryUntilPresent("strata_worker_ranks_running == 1");
  // The coordinator's per-job series for both jobs (the federated one runs no ranks).
  QueryUntilPresent("count(strata_train_step) == 2 and on() count(strata_job_restarts_total) == 2");

  // Federated figures while the client trains: rounds close, bytes flow both ways.
  QueryUntilPresent(absl::StrCat("strata_federated_clients_online{", fed_job, "} == 1"));
  QueryUntilPresent(absl::StrCat("strata_federated_round{", fed_job, "} >= 3"));
  QueryUntilPresent(absl::StrCat("strata_federated_bytes_up_per_client{", fed_job, "} > 0"));
  QueryUntilPresent(absl::StrCat("strata_federated_bytes_down_per_client{", fed_job, "} > 0"));
  QueryUntilPresent("strata_federated_rounds_total{outcome=\"closed\"} >= 2");
  QueryUntilPresent("strata_federated_replies_total{outcome=\"ok\"} >= 2");
  QueryUntilPresent("strata_federated_round_seconds_count >= 2");
  // The client runs faster than --client_rate_limit=5 allows: it is throttled, backs off and
  // carries on (the rounds above still close).
  QueryUntilPresent("strata_federated_rate_limited_total > 0");
  QueryUntilPresent("rate(strata_federated_rounds_total{outcome=\"closed\"}[15s]) > 0");
  EXPECT_THAT(Query("strata_federated_rounds_total{outcome=\"failed\"} > 0"), IsEmpty());

  // The dashboard's data shows the same federated job with its latest rounds (no tokens here:
  // everyone sees everything).
  {
    httplib::Client http("127.0.0.1", coordinator_metrics_);
    auto reply = http.Get("/api/v1/dashboard");
    ASSERT_TRUE(reply && reply->status == 200);
    const nlohmann::json dashboard = nlohmann::json::parse(reply->body);
    bool shown = false;
    for (const nlohmann::json& job : dashboard["jobs"]) {
      if (job["id"] != fed) continue;
      shown = true;
      EXPECT_TRUE(job["federated"].get<bool>());
      EXPECT_GE(job["round"].get<int64_t>(), 2);
      ASSERT_FALSE(job["rounds"].empty()) << job.dump();
      EXPECT_EQ(job["rounds"][0]["round"].get<int64_t>(),
                job["rounds"][job["rounds"].size() - 1]["round"].get<int64_t>() +
                    static_cast<int64_t>(job["rounds"].size()) - 1)
          << "newest round first";
      EXPECT_FALSE(job["curve"].empty()) << "the rounds' mean losses";
    }
    EXPECT_TRUE(shown) << reply->body;
  }

  // The ZO job steps, at a rate, with throughput, NVMe traffic and an evaluation.
  QueryUntilPresent(absl::StrCat("strata_train_step{", zo_job, ", rank=\"0\"} > 20"));
  QueryUntilPresent(absl::StrCat("deriv(strata_train_step{", zo_job, "}[15s]) > 0"));
  QueryUntilPresent(
      absl::StrCat("rate(strata_train_step_duration_seconds_count{", zo_job, "}[15s]) > 0"));
  QueryUntilPresent(absl::StrCat("strata_rank_step{", zo_job, ", rank=\"0\"} > 0"));
  QueryUntilPresent(absl::StrCat("strata_train_tokens_per_second{", zo_job, "} > 0"));
  QueryUntilPresent(absl::StrCat("rate(strata_train_tokens_total{", zo_job, "}[15s]) > 0"));
  QueryUntilPresent(absl::StrCat("strata_offload_nvme_read_bytes_total{", zo_job, "} > 0"));
  QueryUntilPresent(absl::StrCat("strata_offload_nvme_write_bytes_total{", zo_job, "} > 0"));
  QueryUntilPresent(absl::StrCat("strata_train_eval_loss{", zo_job, "} > 0"));
  QueryUntilPresent(absl::StrCat("strata_job_restarts_total{", zo_job, "} == 0"));
  QueryUntilPresent(absl::StrCat("strata_worker_nvme_free_bytes{path=\"", nvme_,
                                 "\"} > 0 <= on(instance, job, path) "
                                 "strata_worker_nvme_capacity_bytes"));

  // Every series docs/metrics.md lists, with its documented type (a histogram family X is
  // stored as X_bucket, X_sum and X_count).
  const std::map<std::string, std::string> documented =
      DocumentedSeries(ReadFileOrEmpty(kMetricsDoc));
  ASSERT_GE(documented.size(), 20u) << "no tables in " << kMetricsDoc;
  std::set<std::string> scraped = ScrapedNames();
  const json metadata = Api("/api/v1/metadata");
  for (const auto& [name, type] : documented) {
    const std::string stored = type == "histogram" ? name + "_bucket" : name;
    // Series of task jobs only (a task's metrics): this run has none, so they may be absent;
    // when present, their type is checked like every other.
    if (kTaskJobSeries.count(name) > 0 && scraped.count(stored) == 0) continue;
    EXPECT_EQ(scraped.count(stored), 1u) << name << " (docs/metrics.md) was not scraped";
    ASSERT_TRUE(metadata.is_object());
    if (!metadata.contains(name)) {
      ADD_FAILURE() << "no metadata for " << name;
      continue;
    }
    EXPECT_EQ(metadata[name][0].value("type", ""), type) << name << "'s type";
  }
  // And nothing scraped is undocumented.
  for (const std::string& name : scraped) {
    if (name.rfind("strata_", 0) != 0) continue;
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (absl::EndsWith(name, suffix) &&
          documented.count(name.substr(0, name.size() - strlen(suffix))) > 0) {
        family = name.substr(0, name.size() - strlen(suffix));
      }
    }
    EXPECT_EQ(documented.count(family), 1u) << name << " is scraped but not in docs/metrics.md";
  }

  // The dashboard: every metric it names exists, and every panel query returns data.
  const json dashboard =
      json::parse(ReadFileOrEmpty(kDashboard), nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(dashboard.is_object()) << kDashboard << " is not JSON";
  const DashboardQueries queries = QueriesOf(dashboard);
  ASSERT_GE(queries.panel_exprs.size(), 20u);
  ASSERT_EQ(queries.variable_queries.size(), 1u);  // job_id.
  EXPECT_THAT(UnknownNames(queries, scraped), IsEmpty()) << "in " << kDashboard;
  for (const std::string& expr : queries.panel_exprs) {
    const std::string runnable = Runnable(expr);
    EXPECT_EQ(runnable.find('$'), std::string::npos) << "unknown variable in " << expr;
    EXPECT_FALSE(QueryUntilPresent(runnable, absl::Seconds(20)).empty()) << expr;
  }

  // The rules loaded: the file's groups and alerts, each evaluated without error, none firing.
  const std::string rules_yaml = ReadFileOrEmpty(kRules);
  const std::set<std::string> want_groups = RuleFileNames(rules_yaml, "name");
  const std::set<std::string> want_alerts = RuleFileNames(rules_yaml, "alert");
  ASSERT_GE(want_alerts.size(), 5u);
  std::set<std::string> groups, alerts;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  bool all_evaluated = false;
  std::string problems;
  while (!all_evaluated && absl::Now() < deadline) {
    const json data = Api("/api/v1/rules");
    ASSERT_TRUE(data.is_object() && data.contains("groups"));
    groups.clear();
    alerts.clear();
    problems.clear();
    all_evaluated = true;
    for (const json& group : data["groups"]) {
      groups.insert(group["name"].get<std::string>());
      for (const json& rule : group["rules"]) {
        const std::string name = rule["name"];
        alerts.insert(name);
        if (absl::StartsWith(rule.value("lastEvaluation", ""), "0001-")) all_evaluated = false;
        if (rule.value("health", "") != "ok") {
          absl::StrAppend(&problems, name, ": ", rule.value("health", ""), " ",
                          rule.value("lastError", ""), "\n");
        }
        if (rule.value("state", "") == "firing") absl::StrAppend(&problems, name, " firing\n");
      }
    }
    if (!all_evaluated) absl::SleepFor(absl::Milliseconds(500));
  }
  EXPECT_TRUE(all_evaluated) << "rules not evaluated within 20 s";
  EXPECT_EQ(groups, want_groups);
  EXPECT_EQ(alerts, want_alerts);
  EXPECT_EQ(problems, "");

  if (HasFailure()) {
    std::printf("edge stdout:\n%s\nedge stderr:\n%s\n", edge->Stdout().c_str(),
                edge->Stderr().c_str());
  }
  // A round the client never answers fails at its deadline.
  ASSERT_TRUE(edge->Signal(SIGKILL).ok());
  edge->Wait(absl::Seconds(10)).IgnoreError();
  QueryUntilPresent("strata_federated_rounds_total{outcome=\"failed\"} >= 1", absl::Seconds(30));
  QueryUntilPresent(absl::StrCat("strata_federated_clients_online{", fed_job, "} == 0"),
                    absl::Seconds(30));
}

}  // namespace
}  // namespace strata
