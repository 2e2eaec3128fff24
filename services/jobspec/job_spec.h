// What Strata accepts as a JobSpec: the one place where a spec's rules live. Every field is
// either honoured (its default, when it has one, applied here and documented in docs/config.md
// and proto/strata/v1/job.proto) or refused when set, with INVALID_ARGUMENT naming the field
// ("spec.offload.queue_depth: not supported yet"). Enum numbers outside the declared set are
// refused. The coordinator runs this at submit (and stores the result, so `job describe` shows
// what runs); BuildRunConfig runs it again on the worker and in strata-train's local mode.
// Normalizing a normalized spec changes nothing.
#ifndef STRATA_SERVICES_JOBSPEC_JOB_SPEC_H_
#define STRATA_SERVICES_JOBSPEC_JOB_SPEC_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "proto/strata/v1/job.pb.h"

namespace strata {

// The spec with defaults applied, or INVALID_ARGUMENT naming the first bad field.
absl::StatusOr<v1::JobSpec> NormalizeJobSpec(const v1::JobSpec& spec);

// INVALID_ARGUMENT "spec.<field>: <why>", the form every refusal of a spec field takes.
absl::Status SpecFieldError(const std::string& field, const std::string& why);

// INVALID_ARGUMENT naming the first enum field (as `prefix.path.to.field`) of `message`, at any
// depth, whose number is not one its enum declares.
absl::Status CheckEnumsDeclared(const google::protobuf::Message& message,
                                const std::string& prefix);

}  // namespace strata

#endif  // STRATA_SERVICES_JOBSPEC_JOB_SPEC_H_
