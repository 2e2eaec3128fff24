// Bearer tokens of the coordinator's callers: users (JobService, `node list`) and workers
// (WorkerService). Token files hold "TOKEN NAME" lines ('#' comments): a user token maps to the
// user, a worker token to the one worker name it may register, stream and report as (a worker
// id is bound to its credential). Names are 1-63 characters of [A-Za-z0-9._-]: a user's name
// is also the directory of its area on the workers. A user line may add quotas:
// "TOKEN USER max_jobs=N max_cores=N" (jobs not yet finished; cores they hold or ask for), and
// "role=operator": an operator sees every user's jobs on the dashboard and may cordon and drain
// workers. An empty table means that kind of caller is not authenticated (and, for users, that
// every caller is an operator).
#ifndef STRATA_SERVICES_COORDINATOR_TOKENS_H_
#define STRATA_SERVICES_COORDINATOR_TOKENS_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace strata {

// "TOKEN NAME" lines of `path` ('#' comments) as token -> name; `flag` names the file's flag in
// errors. An empty path is an empty table; an existing file without tokens is an error. With
// `options`, words after the name are returned there (token -> words); without, they are an
// error.
absl::StatusOr<std::map<std::string, std::string>> ReadTokenFile(
    const std::string& path, const char* flag,
    std::map<std::string, std::vector<std::string>>* options = nullptr);

// A user's limits from the tokens file; 0 means no limit.
struct UserQuota {
  int64_t max_jobs = 0;   // Jobs not in a terminal state.
  int64_t max_cores = 0;  // Cores of those jobs (ranks x cores_per_rank).
};

// The call's "authorization: Bearer TOKEN" token, or "".
std::string BearerToken(const grpc::ServerContext* context);
// The token of an Authorization header value "Bearer TOKEN", or "".
std::string BearerToken(const std::string& authorization);

class TokenTable {
 public:
  TokenTable() = default;
  TokenTable(std::map<std::string, std::string> users, std::map<std::string, std::string> workers,
             std::map<std::string, UserQuota> quotas = {}, std::set<std::string> operators = {})
      : users_(std::move(users)),
        workers_(std::move(workers)),
        quotas_(std::move(quotas)),
        operators_(std::move(operators)) {}
  // Either path may be empty (no table of that kind).
  static absl::StatusOr<TokenTable> Load(const std::string& users_file,
                                         const std::string& workers_file);

  bool has_users() const { return !users_.empty(); }
  bool has_workers() const { return !workers_.empty(); }

  // The caller's user name ("" without a user table), or UNAUTHENTICATED.
  grpc::Status User(const grpc::ServerContext* context, std::string* user) const;
  // The same for a bearer token given directly (the dashboard's HTTP calls).
  grpc::Status UserForToken(const std::string& token, std::string* user) const;
  // Whether `user` has role=operator (everyone without a user table).
  bool IsOperator(const std::string& user) const;
  // The caller's user name when it is an operator; UNAUTHENTICATED or PERMISSION_DENIED else.
  grpc::Status Operator(const grpc::ServerContext* context, std::string* user) const;
  // OK when the caller's token is worker `name`'s (always, without a worker table).
  grpc::Status Worker(const grpc::ServerContext* context, const std::string& name) const;
  // The worker the caller's token is bound to ("" without a worker table), or UNAUTHENTICATED.
  grpc::Status WorkerName(const grpc::ServerContext* context, std::string* name) const;
  // The user's quota (no limits when the tokens file gives none).
  UserQuota Quota(const std::string& user) const;

 private:
  const std::map<std::string, std::string> users_, workers_;
  const std::map<std::string, UserQuota> quotas_;
  const std::set<std::string> operators_;
};

}  // namespace strata

#endif  // STRATA_SERVICES_COORDINATOR_TOKENS_H_
