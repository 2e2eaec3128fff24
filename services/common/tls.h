// TLS for every gRPC connection of the Strata binaries, from the shared flags --tls_cert,
// --tls_key (servers), --tls_ca (clients: the CA that signed the coordinator's certificate;
// empty trusts the system roots) and --insecure (plaintext, only when asked for, with a
// warning). Clients also read STRATA_TLS_CA and STRATA_INSECURE=1. deploy/dev-certs.sh makes a
// development CA and a certificate for this host.
#ifndef STRATA_SERVICES_COMMON_TLS_H_
#define STRATA_SERVICES_COMMON_TLS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace strata {

struct TlsConfig {
  std::string cert_file;  // PEM certificate chain (servers).
  std::string key_file;   // PEM private key (servers).
  std::string ca_file;    // PEM roots to verify the server with (clients).
  bool insecure = false;  // Plaintext.
};

// The flags (and, for clients, the environment).
TlsConfig TlsConfigFromFlags();

// Server credentials; `who` names the binary in messages and the plaintext warning.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsConfig& config, const std::string& who);
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsConfig& config, const std::string& who);

}  // namespace strata

#endif  // STRATA_SERVICES_COMMON_TLS_H_
