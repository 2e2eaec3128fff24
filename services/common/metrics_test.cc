// The operator endpoint over real HTTP on loopback: /metrics in the Prometheus text format
// (HELP/TYPE once per family, each family's samples together, exact integers, escaped labels,
// cumulative histogram buckets with +Inf, _sum,
// _count), /healthz, and /readyz following the ready callback; a busy port is an error. Added
// pages get the Authorization header and query; with a certificate everything is HTTPS only.
#include "services/common/metrics.h"

#include <httplib.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTest, ServesPrometheusTextHealthAndReadiness) {
  std::atomic<bool> ready{false};
  Histogram h({0.1, 1.0});
  h.Observe(0.05);
  h.Observe(0.5, 3);
  h.Observe(7);
  OperatorEndpoint::Options options;
  options.listen = "127.0.0.1:0";
  options.collect = [&](MetricsWriter* out) {
    out->Gauge("strata_jobs", "Jobs by state.", {{"state", "QUEUED"}}, 2);
    out->Gauge("strata_jobs", "Jobs by state.", {{"state", "RUNNING"}}, 1);
    out->Counter("strata_train_tokens_total", "Tokens.", {{"job_id", "a\"b"}, {"rank", "0"}}, 1024);
    out->Gauge("strata_train_loss", "Loss.", {}, 2.70553000123);
    out->Counter("strata_train_tokens_total", "Tokens.", {{"job_id", "c"}, {"rank", "0"}},
                 270553000123.0);
    out->WriteHistogram("strata_train_step_duration_seconds", "Step time.",
                        {{"job_id", "j"}, {"rank", "0"}}, h);
  };
  options.ready = [&] { return ready.load(); };
  auto endpoint = OperatorEndpoint::Start(options);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  httplib::Client client("127.0.0.1", (*endpoint)->port());
  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  const std::string& body = metrics->body;
  EXPECT_THAT(body,
              HasSubstr("# HELP strata_jobs Jobs by state.\n# TYPE strata_jobs gauge\n"
                        "strata_jobs{state=\"QUEUED\"} 2\nstrata_jobs{state=\"RUNNING\"} 1\n"));
  EXPECT_EQ(body.find("# TYPE strata_jobs gauge"), body.rfind("# TYPE strata_jobs gauge"));
  EXPECT_THAT(body, HasSubstr("strata_train_tokens_total{job_id=\"a\\\"b\",rank=\"0\"} 1024\n"));
  EXPECT_THAT(body, HasSubstr("strata_train_step_duration_seconds_bucket{job_id=\"j\",rank=\"0\","
                              "le=\"0.1\"} 1\n"));
  EXPECT_THAT(body, HasSubstr("le=\"1\"} 4\n"));
  EXPECT_THAT(body, HasSubstr("le=\"+Inf\"} 5\n"));
  EXPECT_THAT(body,
              HasSubstr("strata_train_step_duration_seconds_count{job_id=\"j\",rank=\"0\"} 5"));
  EXPECT_THAT(body,
              HasSubstr("strata_train_step_duration_seconds_sum{job_id=\"j\",rank=\"0\"} 8.55"));
  EXPECT_EQ(client.Get("/healthz")->status, 200);
  EXPECT_EQ(client.Get("/readyz")->status, 503);
  // A family written in two places still comes out as one group; big counters exactly.
  EXPECT_THAT(body, HasSubstr("strata_train_tokens_total{job_id=\"a\\\"b\",rank=\"0\"} 1024\n"
                              "strata_train_tokens_total{job_id=\"c\",rank=\"0\"} "
                              "270553000123\n"));
  EXPECT_THAT(body, HasSubstr("strata_train_loss 2.70553000123\n"));
  ready = true;
  EXPECT_EQ(client.Get("/readyz")->status, 200);

  OperatorEndpoint::Options busy;
  busy.listen = "127.0.0.1:" + std::to_string((*endpoint)->port());
  auto second = OperatorEndpoint::Start(busy);
  EXPECT_FALSE(second.ok());
  OperatorEndpoint::Options no_port;
  no_port.listen = "no-port";
  EXPECT_FALSE(OperatorEndpoint::Start(no_port).ok());
}

TEST(MetricsTest, AddedPagesSeeTheCallersTokenAndServeOverHttps) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/https";
  std::filesystem::create_directories(dir);
  const std::string cert = dir + "/cert.pem", key = dir + "/key.pem";
  ASSERT_EQ(std::system(("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                         "-addext subjectAltName=IP:127.0.0.1 -keyout " +
                         key + " -out " + cert + " 2>/dev/null")
                            .c_str()),
            0);
  OperatorEndpoint::Options options;
  options.listen = "127.0.0.1:0";
  options.tls_cert_file = cert;
  options.tls_key_file = key;
  options.pages["/api/who"] = [](const HttpGet& get) {
    HttpReply reply;
    reply.status = get.authorization == "Bearer t0ken" ? 200 : 401;
    reply.content_type = "application/json";
    reply.body = "{\"job\":\"" + (get.query.count("job") ? get.query.at("job") : "") + "\"}";
    return reply;
  };
  auto endpoint = OperatorEndpoint::Start(options);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_TRUE((*endpoint)->tls());

  httplib::SSLClient client("127.0.0.1", (*endpoint)->port());
  client.set_ca_cert_path(cert.c_str());
  client.enable_server_certificate_verification(true);
  auto denied = client.Get("/api/who?job=j-1");
  ASSERT_TRUE(denied) << httplib::to_string(denied.error());
  EXPECT_EQ(denied->status, 401);
  EXPECT_EQ(denied->get_header_value("Cache-Control"), "no-store");
  auto allowed = client.Get("/api/who?job=j-1", {{"Authorization", "Bearer t0ken"}});
  ASSERT_TRUE(allowed);
  EXPECT_EQ(allowed->status, 200);
  EXPECT_EQ(allowed->body, "{\"job\":\"j-1\"}");
  EXPECT_EQ(client.Get("/healthz")->status, 200);
  // Plain HTTP to the HTTPS port gets no page.
  httplib::Client plain("127.0.0.1", (*endpoint)->port());
  auto plaintext = plain.Get("/healthz");
  EXPECT_TRUE(!plaintext || plaintext->status != 200);

  OperatorEndpoint::Options half;
  half.listen = "127.0.0.1:0";
  half.tls_cert_file = cert;
  EXPECT_FALSE(OperatorEndpoint::Start(half).ok());
  OperatorEndpoint::Options swapped = half;
  swapped.tls_key_file = cert;  // A certificate where the key belongs.
  EXPECT_FALSE(OperatorEndpoint::Start(swapped).ok());
}

}  // namespace
}  // namespace strata
