// See tokens.h.
#include "services/coordinator/tokens.h"

#include <fstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/jobspec/job_paths.h"

namespace strata {
absl::StatusOr<std::map<std::string, std::string>> ReadTokenFile(
    const std::string& path, const char* flag,
    std::map<std::string, std::vector<std::string>>* options) {
  std::map<std::string, std::string> tokens;
  if (path.empty()) return tokens;
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(flag, ": cannot read ", path));
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (words.empty() || words[0][0] == '#') continue;
    if (words.size() < 2 || (words.size() > 2 && options == nullptr)) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": ", path, ":", number, ": expected \"TOKEN NAME\""));
    }
    if (!tokens.emplace(words[0], words[1]).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": ", path, ":", number, ": the token is listed twice"));
    }
    if (options != nullptr) (*options)[words[0]].assign(words.begin() + 2, words.end());
  }
  if (tokens.empty())
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is empty"));
  return tokens;
}

std::string BearerToken(const grpc::ServerContext* context) {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return "";
  return BearerToken(std::string(it->second.data(), it->second.size()));
}

std::string BearerToken(const std::string& authorization) {
  return absl::StartsWith(authorization, "Bearer ") ? authorization.substr(7) : "";
}

absl::StatusOr<TokenTable> TokenTable::Load(const std::string& users_file,
                                            const std::string& workers_file) {
  std::map<std::string, std::vector<std::string>> options;
  absl::StatusOr<std::map<std::string, std::string>> users =
      ReadTokenFile(users_file, "--tokens_file", &options);
  if (!users.ok()) return users.status();
  absl::StatusOr<std::map<std::string, std::string>> workers =
      ReadTokenFile(workers_file, "--worker_tokens_file");
  if (!workers.ok()) return workers.status();
  std::map<std::string, UserQuota> quotas;
  std::set<std::string> operators;
  for (const auto& [token, user] : *users) {
    if (!IsSafePathComponent(user)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--tokens_file: user \"", user, "\" must be 1-63 characters of [A-Za-z0-9._-]"));
    }
    for (const std::string& word : options[token]) {
      std::pair<std::string, std::string> kv = absl::StrSplit(word, absl::MaxSplits('=', 1));
      if (kv.first == "role") {
        if (kv.second != "operator" && kv.second != "user") {
          return absl::InvalidArgumentError(absl::StrCat(
              "--tokens_file: user ", user, ": role \"", kv.second,
              "\" is not a role (role=operator or role=user)"));
        }
        if (kv.second == "operator") operators.insert(user);
        continue;
      }
      int64_t value = 0;
      if (!absl::SimpleAtoi(kv.second, &value) || value < 0 ||
          (kv.first != "max_jobs" && kv.first != "max_cores")) {
        return absl::InvalidArgumentError(
            absl::StrCat("--tokens_file: user ", user, ": \"", word,
                         "\" is not a quota (max_jobs=N or max_cores=N, N >= 0) or "
                         "role=operator"));
      }
      UserQuota& quota = quotas[user];
      (kv.first == "max_jobs" ? quota.max_jobs : quota.max_cores) = value;
    }
  }
  std::map<std::string, int> tokens_per_worker;
  for (const auto& [token, name] : *workers) {
    if (!IsSafePathComponent(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--worker_tokens_file: worker \"", name,
          "\" must be 1-63 characters of [A-Za-z0-9._-] (each token names one worker)"));
    }
    if (++tokens_per_worker[name] > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--worker_tokens_file: worker ", name, " has more than one token"));
    }
  }
  return TokenTable(*std::move(users), *std::move(workers), std::move(quotas),
                    std::move(operators));
}

UserQuota TokenTable::Quota(const std::string& user) const {
  auto it = quotas_.find(user);
  return it == quotas_.end() ? UserQuota() : it->second;
}

grpc::Status TokenTable::User(const grpc::ServerContext* context, std::string* user) const {
  return UserForToken(BearerToken(context), user);
}

bool TokenTable::IsOperator(const std::string& user) const {
  return users_.empty() || operators_.count(user) > 0;
}

grpc::Status TokenTable::Operator(const grpc::ServerContext* context, std::string* user) const {
  if (grpc::Status s = User(context, user); !s.ok()) return s;
  if (!IsOperator(*user)) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat("user ", *user,
                                     " is not an operator (role=operator in --tokens_file)"));
  }
  return grpc::Status::OK;
}

grpc::Status TokenTable::UserForToken(const std::string& token, std::string* user) const {
  user->clear();
  if (users_.empty()) return grpc::Status::OK;
  if (token.empty()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing \"authorization: Bearer TOKEN\" (set STRATA_TOKEN or --token)");
  }
  auto it = users_.find(token);
  if (it == users_.end()) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown token");
  *user = it->second;
  return grpc::Status::OK;
}

grpc::Status TokenTable::WorkerName(const grpc::ServerContext* context, std::string* name) const {
  name->clear();
  if (workers_.empty()) return grpc::Status::OK;
  auto it = workers_.find(BearerToken(context));
  if (it == workers_.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "worker calls need a worker token (strata-worker --worker_token)");
  }
  *name = it->second;
  return grpc::Status::OK;
}

grpc::Status TokenTable::Worker(const grpc::ServerContext* context, const std::string& name) const {
  if (workers_.empty()) return grpc::Status::OK;
  auto it = workers_.find(BearerToken(context));
  if (it == workers_.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "worker calls need a worker token (strata-worker --worker_token)");
  }
  if (it->second != name) {
    return grpc::Status(
        grpc::StatusCode::PERMISSION_DENIED,
        absl::StrCat("this worker token is for \"", it->second, "\", not \"", name, "\""));
  }
  return grpc::Status::OK;
}

}  // namespace strata
