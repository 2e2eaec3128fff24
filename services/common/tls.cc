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
          "Plaintext gRPC instead of TLS (development only; logged as a warning). Clients also "
          "honour STRATA_INSECURE=1.");

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
  if (config.insecure) {
    STRATA_LOG(WARNING) << who << ": --insecure: serving plaintext gRPC; anyone on the network "
                        << "can read and forge calls";
    return grpc::InsecureServerCredentials();
  }
  if (config.cert_file.empty() || config.key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs --tls_cert and --tls_key (deploy/dev-certs.sh makes a development pair), or "
        "pass --insecure for plaintext");
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

}  // namespace strata
