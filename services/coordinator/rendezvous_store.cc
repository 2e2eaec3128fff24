// See rendezvous_store.h.
#include "services/coordinator/rendezvous_store.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace strata {
namespace {

constexpr size_t kMaxKey = 512, kMaxValue = 1 << 20, kMaxKeys = 4096;

}  // namespace

absl::Status RendezvousStore::Set(const std::string& prefix, const std::string& key,
                                  std::string value) {
  if (prefix.empty() || key.empty() || key.size() > kMaxKey) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefix must be set and key 1-", kMaxKey, " bytes"));
  }
  if (value.size() > kMaxValue) {
    return absl::ResourceExhaustedError(
        absl::StrCat("value of ", key, " is ", value.size(), " bytes; at most ", kMaxValue));
  }
  absl::MutexLock lock(&mu_);
  auto& entries = data_[prefix];
  if (entries.size() >= kMaxKeys && entries.count(key) == 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("prefix ", prefix, " already holds ", kMaxKeys, " keys"));
  }
  entries[key] = std::move(value);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> RendezvousStore::Get(const std::string& prefix,
                                                              const std::vector<std::string>& keys,
                                                              absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto all_set = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = data_.find(prefix);
    if (it == data_.end()) return keys.empty();
    for (const std::string& k : keys) {
      if (it->second.count(k) == 0) return false;
    }
    return true;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&all_set), timeout)) {
    std::vector<std::string> missing;
    auto it = data_.find(prefix);
    for (const std::string& k : keys) {
      if (it == data_.end() || it->second.count(k) == 0) missing.push_back(k);
    }
    return absl::DeadlineExceededError(absl::StrCat("rendezvous ", prefix, ": keys not set within ",
                                                    absl::FormatDuration(timeout), ": ",
                                                    absl::StrJoin(missing, ", ")));
  }
  std::vector<std::string> values;
  const auto& entries = data_[prefix];
  for (const std::string& k : keys) values.push_back(entries.at(k));
  return values;
}

void RendezvousStore::Drop(const std::string& prefix) {
  absl::MutexLock lock(&mu_);
  data_.erase(prefix);
}

}  // namespace strata
