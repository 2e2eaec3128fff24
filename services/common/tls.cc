// See tls.h.
#include "services/common/tls.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "runtime/base/logging.h"

ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate (chain) this binary's gRPC server presents (deploy/dev-certs.sh).");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA certificate that signed the coordinator's certificate (clients). Default: "
          "$STRATA_TLS_CA, else the system roots.");
ABSL_FLAG(bool, insecure, false,
          "Client side: plaintext gRPC to the coordinator instead of TLS (development only; "
          "logged as a warning). Also STRATA_INSECURE=1. Never makes a server plaintext "
          "(--serve_plaintext does).");
ABSL_FLAG(bool, serve_plaintext, false,
          "Server side: serve plaintext gRPC instead of TLS (development only; logged as a "
          "warning). Anyone on the network can then read and forge every call.");
ABSL_FLAG(bool, allow_token_over_plaintext, false,
          "Client side: send a bearer token even over --insecure (plaintext), where anyone on "
          "the network can read it. Refused without this flag.");

namespace strata {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(flag, ": cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is not a PEM file"));
  }
  return text.str();
}

}  // namespace

TlsConfig TlsConfigFromFlags() {
  TlsConfig config;
  config.cert_file = absl::GetFlag(FLAGS_tls_cert);
  config.key_file = absl::GetFlag(FLAGS_tls_key);
  config.ca_file = absl::GetFlag(FLAGS_tls_ca);
  config.insecure = absl::GetFlag(FLAGS_insecure);
  config.serve_plaintext = absl::GetFlag(FLAGS_serve_plaintext);
  config.allow_token_over_plaintext = absl::GetFlag(FLAGS_allow_token_over_plaintext);
  if (config.ca_file.empty() && std::getenv("STRATA_TLS_CA") != nullptr) {
    config.ca_file = std::getenv("STRATA_TLS_CA");
  }
  if (const char* env = std::getenv("STRATA_INSECURE"); env != nullptr && std::string(env) == "1") {
    config.insecure = true;
  }
  return config;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsConfig& config, const std::string& who) {
  if (config.serve_plaintext) {
    STRATA_LOG(WARNING) << who << ": --serve_plaintext: serving plaintext gRPC; anyone on the "
                        << "network can read and forge calls";
    return grpc::InsecureServerCredentials();
  }
  if (config.cert_file.empty() || config.key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs --tls_cert and --tls_key (deploy/dev-certs.sh makes a development pair), or "
        "pass --serve_plaintext for plaintext");
  }
  absl::StatusOr<std::string> cert = ReadPem(config.cert_file, "--tls_cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem(config.key_file, "--tls_key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({*key, *cert});
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsConfig& config, const std::string& who) {
  if (config.insecure) {
    STRATA_LOG(WARNING) << who << ": --insecure: plaintext gRPC to the coordinator";
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions options;
  if (!config.ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPem(config.ca_file, "--tls_ca");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
  }
  return grpc::SslCredentials(options);
}

absl::Status CheckTokenTransport(const TlsConfig& config, const std::string& token_source) {
  if (!config.insecure || config.allow_token_over_plaintext) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      token_source,
      ": refusing to send a bearer token over plaintext (--insecure), where anyone "
      "on the network can read it; use TLS (--tls_ca), or --allow_token_over_plaintext"));
}

absl::StatusOr<std::string> ReadSecret(const std::string& flag_value, const std::string& file,
                                       const char* env, const char* file_flag) {
  if (!flag_value.empty()) return flag_value;
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) return absl::NotFoundError(absl::StrCat(file_flag, ": cannot read ", file));
    std::string token;
    std::getline(in, token);
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(file_flag, ": ", file, " is empty"));
    }
    return token;
  }
  const char* value = std::getenv(env);
  return std::string(value != nullptr ? value : "");
}

absl::Status EndpointTlsFiles(bool https, const TlsConfig& config, std::string* cert_file,
                              std::string* key_file) {
  if (!https) return absl::OkStatus();
  if (config.cert_file.empty() || config.key_file.empty()) {
    return absl::InvalidArgumentError(
        "--metrics_tls needs --tls_cert and --tls_key (the same pair gRPC serves)");
  }
  *cert_file = config.cert_file;
  *key_file = config.key_file;
  return absl::OkStatus();
}

}  // namespace strata
