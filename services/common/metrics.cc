// See metrics.h.
#include "services/common/metrics.h"

#include <httplib.h>

#include <charconv>
#include <cmath>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace strata {
namespace {

std::string Escape(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string Labels(const MetricLabels& labels, const std::string& extra_key = "",
                   const std::string& extra_value = "") {
  std::string out;
  auto add = [&](const std::string& k, const std::string& v) {
    out += out.empty() ? "{" : ",";
    out += absl::StrCat(k, "=\"", Escape(v), "\"");
  };
  for (const auto& [k, v] : labels) add(k, v);
  if (!extra_key.empty()) add(extra_key, extra_value);
  return out.empty() ? out : out + "}";
}

std::string Number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Counters of bytes, tokens and steps exactly; everything else round-trips.
  if (v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  char digits[32];  // The shortest text that reads back as the same double.
  const std::to_chars_result end = std::to_chars(digits, digits + sizeof(digits), v);
  return std::string(digits, end.ptr);
}

}  // namespace

void Histogram::Observe(double value, uint64_t n) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (value <= bounds_[i]) {
      counts_[i] += n;
      break;
    }
  }
  count_ += n;
  sum_ += value * static_cast<double>(n);
}

std::string& MetricsWriter::Family(const std::string& name, const std::string& help,
                                   const char* type) {
  auto [it, added] = families_.try_emplace(name);
  if (added) {
    order_.push_back(name);
    absl::StrAppend(&it->second, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
  }
  return it->second;
}

std::string MetricsWriter::text() const {
  std::string out;
  for (const std::string& name : order_) out += families_.at(name);
  return out;
}

void MetricsWriter::Gauge(const std::string& name, const std::string& help,
                          const MetricLabels& labels, double value) {
  absl::StrAppend(&Family(name, help, "gauge"), name, Labels(labels), " ", Number(value), "\n");
}

void MetricsWriter::Counter(const std::string& name, const std::string& help,
                            const MetricLabels& labels, double value) {
  absl::StrAppend(&Family(name, help, "counter"), name, Labels(labels), " ", Number(value), "\n");
}

void MetricsWriter::WriteHistogram(const std::string& name, const std::string& help,
                                   const MetricLabels& labels, const Histogram& h) {
  std::string& out = Family(name, help, "histogram");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds().size(); ++i) {
    cumulative += h.counts()[i];
    absl::StrAppend(&out, name, "_bucket", Labels(labels, "le", Number(h.bounds()[i])), " ",
                    cumulative, "\n");
  }
  absl::StrAppend(&out, name, "_bucket", Labels(labels, "le", "+Inf"), " ", h.count(), "\n");
  absl::StrAppend(&out, name, "_sum", Labels(labels), " ", Number(h.sum()), "\n");
  absl::StrAppend(&out, name, "_count", Labels(labels), " ", h.count(), "\n");
}

absl::StatusOr<std::unique_ptr<OperatorEndpoint>> OperatorEndpoint::Start(Options options) {
  const size_t colon = options.listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(options.listen.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address \"", options.listen, "\" is not host:port"));
  }
  std::string host = options.listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  std::unique_ptr<OperatorEndpoint> endpoint(new OperatorEndpoint());
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("HTTPS needs both a certificate and its key");
  }
  if (!options.tls_cert_file.empty()) {
    for (const std::string& file : {options.tls_cert_file, options.tls_key_file}) {
      if (!std::ifstream(file).good()) {
        return absl::NotFoundError(absl::StrCat("cannot read ", file, " (HTTPS)"));
      }
    }
    auto https = std::make_unique<httplib::SSLServer>(options.tls_cert_file.c_str(),
                                                      options.tls_key_file.c_str());
    if (!https->is_valid()) {
      return absl::InvalidArgumentError(absl::StrCat("HTTPS: ", options.tls_cert_file, " and ",
                                                     options.tls_key_file,
                                                     " are not a PEM certificate and its key"));
    }
    endpoint->server_ = std::move(https);
    endpoint->tls_ = true;
  } else {
    endpoint->server_ = std::make_unique<httplib::Server>();
  }
  httplib::Server& server = *endpoint->server_;
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a second daemon
  // share a busy port silently instead of failing.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  auto collect = options.collect;
  server.Get("/metrics", [collect](const httplib::Request&, httplib::Response& response) {
    MetricsWriter writer;
    if (collect) collect(&writer);
    response.set_content(writer.text(), "text/plain; version=0.0.4; charset=utf-8");
  });
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("ok\n", "text/plain");
  });
  auto ready = options.ready;
  server.Get("/readyz", [ready](const httplib::Request&, httplib::Response& response) {
    const bool ok = !ready || ready();
    response.status = ok ? 200 : 503;
    response.set_content(ok ? "ready\n" : "not ready\n", "text/plain");
  });
  for (const auto& [path, handler] : options.pages) {
    server.Get(path, [handler](const httplib::Request& request, httplib::Response& response) {
      HttpGet get;
      get.path = request.path;
      get.authorization = request.get_header_value("Authorization");
      for (const auto& [key, value] : request.params) get.query[key] = value;
      const HttpReply reply = handler(get);
      response.status = reply.status;
      // Pages are never cached (they carry per-user data) nor framed by other origins.
      response.set_header("Cache-Control", "no-store");
      response.set_header("X-Frame-Options", "DENY");
      response.set_header("X-Content-Type-Options", "nosniff");
      // Only the daemon's own scripts and styles run; nothing is loaded from elsewhere.
      response.set_header("Content-Security-Policy",
                          "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
      response.set_content(reply.body, reply.content_type);
    });
  }
  endpoint->port_ =
      port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (endpoint->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, " for /metrics (address in use?)"));
  }
  endpoint->thread_ = std::thread([raw = endpoint.get()] { raw->server_->listen_after_bind(); });
  return endpoint;
}

OperatorEndpoint::~OperatorEndpoint() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace strata
