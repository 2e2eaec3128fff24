// See tokens.h.
#include "services/coordinator/tokens.h"

#include <fstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace strata {
absl::StatusOr<std::map<std::string, std::string>> ReadTokenFile(const std::string& path,
                                                                 const char* flag) {
  std::map<std::string, std::string> tokens;
  if (path.empty()) return tokens;
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(flag, ": cannot read ", path));
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (words.empty() || words[0][0] == '#') continue;
    if (words.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": ", path, ":", number, ": expected \"TOKEN NAME\""));
    }
    tokens[words[0]] = words[1];
  }
  if (tokens.empty())
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is empty"));
  return tokens;
}

std::string BearerToken(const grpc::ServerContext* context) {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return "";
  const std::string header(it->second.data(), it->second.size());
  return absl::StartsWith(header, "Bearer ") ? header.substr(7) : "";
}

absl::StatusOr<TokenTable> TokenTable::Load(const std::string& users_file,
                                            const std::string& workers_file) {
  absl::StatusOr<std::map<std::string, std::string>> users =
      ReadTokenFile(users_file, "--tokens_file");
  if (!users.ok()) return users.status();
  absl::StatusOr<std::map<std::string, std::string>> workers =
      ReadTokenFile(workers_file, "--worker_tokens_file");
  if (!workers.ok()) return workers.status();
  return TokenTable(*std::move(users), *std::move(workers));
}

grpc::Status TokenTable::User(const grpc::ServerContext* context, std::string* user) const {
  user->clear();
  if (users_.empty()) return grpc::Status::OK;
  const std::string token = BearerToken(context);
  if (token.empty()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing \"authorization: Bearer TOKEN\" (set STRATA_TOKEN or --token)");
  }
  auto it = users_.find(token);
  if (it == users_.end()) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown token");
  *user = it->second;
  return grpc::Status::OK;
}

grpc::Status TokenTable::AnyWorker(const grpc::ServerContext* context) const {
  if (workers_.empty() || workers_.count(BearerToken(context)) != 0) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      "worker calls need a worker token (strata-worker --worker_token)");
}

grpc::Status TokenTable::Worker(const grpc::ServerContext* context, const std::string& name) const {
  if (workers_.empty()) return grpc::Status::OK;
  auto it = workers_.find(BearerToken(context));
  if (it == workers_.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "worker calls need a worker token (strata-worker --worker_token)");
  }
  if (it->second != "*" && it->second != name) {
    return grpc::Status(
        grpc::StatusCode::PERMISSION_DENIED,
        absl::StrCat("this worker token is for \"", it->second, "\", not \"", name, "\""));
  }
  return grpc::Status::OK;
}

}  // namespace strata
