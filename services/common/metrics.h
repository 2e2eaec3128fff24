// Operator endpoints of the daemons: /metrics in the Prometheus text format (0.0.4), /healthz
// (the process serves) and /readyz (it can take work), plus any pages the daemon adds (the
// coordinator's dashboard), over HTTP on their own port, or HTTPS with a certificate.
// Metrics are pulled: each scrape calls the daemon's collect function, which writes the current
// values through MetricsWriter (HELP and TYPE once per family, each family's samples together,
// label values escaped, integers exactly and other values with full double precision).
// Histogram is the one piece of accumulated state (observations between scrapes).
#ifndef STRATA_SERVICES_COMMON_METRICS_H_
#define STRATA_SERVICES_COMMON_METRICS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace httplib {
class Server;
}

namespace strata {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)), counts_(bounds_.size(), 0) {}
  void Observe(double value) { Observe(value, 1); }
  // `n` observations of `value` (e.g. n steps that took `value` seconds each on average).
  void Observe(double value, uint64_t n);
  const std::vector<double>& bounds() const { return bounds_; }
  const std::vector<uint64_t>& counts() const { return counts_; }  // Not cumulative.
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double sum_ = 0;
};

class MetricsWriter {
 public:
  void Gauge(const std::string& name, const std::string& help, const MetricLabels& labels,
             double value);
  void Counter(const std::string& name, const std::string& help, const MetricLabels& labels,
               double value);
  void WriteHistogram(const std::string& name, const std::string& help, const MetricLabels& labels,
                      const Histogram& histogram);
  // Every family's HELP, TYPE and samples together (the text format wants each family in one
  // group, whatever order the samples were written in), families in order of first use.
  std::string text() const;

 private:
  // The family's block, started with its HELP and TYPE lines on first use.
  std::string& Family(const std::string& name, const std::string& help, const char* type);
  std::vector<std::string> order_;
  std::map<std::string, std::string> families_;
};

// One GET request to a page the daemon adds, and its reply.
struct HttpGet {
  std::string path;
  std::string authorization;  // The "Authorization" header, or "".
  std::map<std::string, std::string> query;
};
struct HttpReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};
using HttpGetHandler = std::function<HttpReply(const HttpGet&)>;

class OperatorEndpoint {
 public:
  struct Options {
    std::string listen = "0.0.0.0:0";  // host:port; port 0 picks one.
    std::function<void(MetricsWriter*)> collect;
    std::function<bool()> ready = [] { return true; };
    // More GET pages by exact path ("/", "/api/v1/dashboard").
    std::map<std::string, HttpGetHandler> pages;
    // HTTPS with this PEM certificate chain and key when both are set; plain HTTP otherwise.
    std::string tls_cert_file;
    std::string tls_key_file;
  };
  static absl::StatusOr<std::unique_ptr<OperatorEndpoint>> Start(Options options);
  ~OperatorEndpoint();
  int port() const { return port_; }
  bool tls() const { return tls_; }

 private:
  OperatorEndpoint() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  bool tls_ = false;
};

}  // namespace strata

#endif  // STRATA_SERVICES_COMMON_METRICS_H_
