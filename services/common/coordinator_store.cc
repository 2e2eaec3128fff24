// See coordinator_store.h.
#include "services/common/coordinator_store.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "services/common/grpc_status.h"

namespace strata {
namespace {

// Each call may take up to this long on the wire beyond the store's own wait.
constexpr absl::Duration kCallSlack = absl::Seconds(10);

std::chrono::system_clock::time_point Deadline(absl::Duration d) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

}  // namespace

CoordinatorStore::CoordinatorStore(std::shared_ptr<grpc::Channel> channel, std::string prefix)
    : stub_(v1::WorkerService::NewStub(std::move(channel))), prefix_(std::move(prefix)) {}

absl::Status CoordinatorStore::Set(const std::string& key, const std::string& value) {
  v1::StoreSetRequest request;
  request.set_prefix(prefix_);
  request.set_key(key);
  request.set_value(value);
  v1::StoreSetResponse response;
  grpc::ClientContext context;
  context.set_deadline(Deadline(kCallSlack));
  context.set_wait_for_ready(true);  // The coordinator may be restarting.
  return FromGrpcStatus(stub_->StoreSet(&context, request, &response), "StoreSet");
}

absl::StatusOr<std::vector<std::string>> CoordinatorStore::Get(const std::vector<std::string>& keys,
                                                               absl::Duration timeout) {
  v1::StoreGetRequest request;
  request.set_prefix(prefix_);
  for (const std::string& key : keys) request.add_keys(key);
  request.mutable_timeout()->set_seconds(absl::ToInt64Seconds(timeout));
  request.mutable_timeout()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(timeout % absl::Seconds(1))));
  v1::StoreGetResponse response;
  grpc::ClientContext context;
  context.set_deadline(Deadline(timeout + kCallSlack));
  context.set_wait_for_ready(true);
  if (absl::Status s = FromGrpcStatus(stub_->StoreGet(&context, request, &response), "StoreGet");
      !s.ok()) {
    return s;
  }
  if (response.values_size() != static_cast<int>(keys.size())) {
    return absl::InternalError(absl::StrCat("the store answered ", response.values_size(),
                                            " values for ", keys.size(), " keys"));
  }
  return std::vector<std::string>(response.values().begin(), response.values().end());
}

}  // namespace strata
