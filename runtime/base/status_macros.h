// Status propagation helpers. The Abseil shipped with Debian 12 predates
// ABSL_RETURN_IF_ERROR/ABSL_ASSIGN_OR_RETURN, so Strata defines its own with the same meaning.
#ifndef STRATA_RUNTIME_BASE_STATUS_MACROS_H_
#define STRATA_RUNTIME_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Evaluates `expr` (an absl::Status); returns it from the enclosing function if not OK.
#define STRATA_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::absl::Status strata_status_ = (expr);          \
    if (!strata_status_.ok()) return strata_status_; \
  } while (0)

#define STRATA_STATUS_CONCAT_INNER_(a, b) a##b
#define STRATA_STATUS_CONCAT_(a, b) STRATA_STATUS_CONCAT_INNER_(a, b)

// `lhs = *expr` for an absl::StatusOr<T> `expr`, or returns its status if not OK.
// `lhs` may declare a variable: STRATA_ASSIGN_OR_RETURN(auto file, OpenFile(path));
#define STRATA_ASSIGN_OR_RETURN(lhs, expr) \
  STRATA_ASSIGN_OR_RETURN_IMPL_(STRATA_STATUS_CONCAT_(strata_statusor_, __LINE__), lhs, expr)

#define STRATA_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = *std::move(statusor)

#endif  // STRATA_RUNTIME_BASE_STATUS_MACROS_H_
