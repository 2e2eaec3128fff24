// Conversions between absl::Status (used everywhere below main and the RPC edge) and
// grpc::Status (used only in handlers and clients). The numeric codes are the same set.
#ifndef STRATA_SERVICES_COMMON_GRPC_STATUS_H_
#define STRATA_SERVICES_COMMON_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace strata {

grpc::Status ToGrpcStatus(const absl::Status& status);

// `rpc` names the call for the message, e.g. "WorkerService.Register".
absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view rpc);

}  // namespace strata

#endif  // STRATA_SERVICES_COMMON_GRPC_STATUS_H_
