// TLS for every gRPC connection of the Strata binaries, from the shared flags --tls_cert,
// --tls_key (servers), --tls_ca (clients: the CA that signed the coordinator's certificate;
// empty trusts the system roots), --insecure (clients: plaintext, with a warning),
// --serve_plaintext (servers: plaintext, with a warning; --insecure never changes a server) and
// --allow_token_over_plaintext (clients: without it a bearer token is never sent over
// plaintext). Clients also read STRATA_TLS_CA and STRATA_INSECURE=1. deploy/dev-certs.sh makes
// a development CA and a certificate for this host. Bearer tokens come from a flag, a file or
// the environment (ReadSecret), so no command line has to carry one.
#ifndef STRATA_SERVICES_COMMON_TLS_H_
#define STRATA_SERVICES_COMMON_TLS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace strata {

struct TlsConfig {
  std::string cert_file;         // PEM certificate chain (servers).
  std::string key_file;          // PEM private key (servers).
  std::string ca_file;           // PEM roots to verify the server with (clients).
  bool insecure = false;         // Plaintext client connections.
  bool serve_plaintext = false;  // Plaintext server.
  bool allow_token_over_plaintext = false;
};

// The flags (and, for clients, the environment).
TlsConfig TlsConfigFromFlags();

// Server credentials; `who` names the binary in messages and the plaintext warning.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsConfig& config, const std::string& who);
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsConfig& config, const std::string& who);

// OK unless `config` is plaintext and tokens over plaintext were not allowed; the error names
// `token_source` (e.g. "--token").
absl::Status CheckTokenTransport(const TlsConfig& config, const std::string& token_source);

// A secret from, in order: the flag's value, the first line of `file` (its flag named
// `file_flag` in errors), the environment variable `env`; "" when none is set.
absl::StatusOr<std::string> ReadSecret(const std::string& flag_value, const std::string& file,
                                       const char* env, const char* file_flag);

// The certificate and key the operator endpoint serves HTTPS with when `https` (the daemons'
// --metrics_tls): the gRPC pair of `config`. Both stay empty without `https`.
absl::Status EndpointTlsFiles(bool https, const TlsConfig& config, std::string* cert_file,
                              std::string* key_file);

}  // namespace strata

#endif  // STRATA_SERVICES_COMMON_TLS_H_
