// Bearer tokens of the coordinator's callers: users (JobService, `node list`) and workers
// (WorkerService). Token files hold "TOKEN NAME" lines ('#' comments): a user token maps to the
// user, a worker token to the worker name it may register and report as ("*": any name). An
// empty table means that kind of caller is not authenticated.
#ifndef STRATA_SERVICES_COORDINATOR_TOKENS_H_
#define STRATA_SERVICES_COORDINATOR_TOKENS_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace strata {

// "TOKEN NAME" lines of `path` ('#' comments) as token -> name; `flag` names the file's flag in
// errors. An empty path is an empty table; an existing file without tokens is an error.
absl::StatusOr<std::map<std::string, std::string>> ReadTokenFile(const std::string& path,
                                                                 const char* flag);

// The call's "authorization: Bearer TOKEN" token, or "".
std::string BearerToken(const grpc::ServerContext* context);

class TokenTable {
 public:
  TokenTable() = default;
  TokenTable(std::map<std::string, std::string> users, std::map<std::string, std::string> workers)
      : users_(std::move(users)), workers_(std::move(workers)) {}
  // Either path may be empty (no table of that kind).
  static absl::StatusOr<TokenTable> Load(const std::string& users_file,
                                         const std::string& workers_file);

  bool has_users() const { return !users_.empty(); }
  bool has_workers() const { return !workers_.empty(); }

  // The caller's user name ("" without a user table), or UNAUTHENTICATED.
  grpc::Status User(const grpc::ServerContext* context, std::string* user) const;
  // OK when the caller's token may act as worker `name` (always, without a worker table).
  grpc::Status Worker(const grpc::ServerContext* context, const std::string& name) const;
  // OK when the caller holds any worker token (always, without a worker table).
  grpc::Status AnyWorker(const grpc::ServerContext* context) const;

 private:
  const std::map<std::string, std::string> users_, workers_;
};

}  // namespace strata

#endif  // STRATA_SERVICES_COORDINATOR_TOKENS_H_
