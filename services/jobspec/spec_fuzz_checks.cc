// See spec_fuzz_checks.h.
#include "services/jobspec/spec_fuzz_checks.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "google/protobuf/util/message_differencer.h"
#include "services/jobspec/job_paths.h"
#include "services/jobspec/job_spec.h"
#include "services/jobspec/run_config_builder.h"

namespace strata {
namespace {

[[noreturn]] void Violated(const std::string& what, const v1::JobSpec& spec) {
  std::fprintf(stderr, "fuzz property violated: %s\nspec: %s\n", what.c_str(),
               spec.ShortDebugString().substr(0, 4000).c_str());
  std::abort();
}

}  // namespace

void CheckSpecProperties(const v1::JobSpec& spec) {
  absl::StatusOr<v1::JobSpec> normalized = NormalizeJobSpec(spec);
  if (!normalized.ok()) {
    const std::string message(normalized.status().message());
    if (!absl::StartsWith(message, "spec"))
      Violated("a refusal that names no field: " + message, spec);
    if (message.size() > 4096)
      Violated("a refusal of " + std::to_string(message.size()) + " bytes", spec);
    return;
  }
  absl::StatusOr<v1::JobSpec> again = NormalizeJobSpec(*normalized);
  if (!again.ok()) {
    Violated("a normalized spec is refused: " + std::string(again.status().message()), *normalized);
  }
  if (!google::protobuf::util::MessageDifferencer::Equals(*again, *normalized)) {
    Violated("normalizing twice changes the spec", *normalized);
  }
  if (normalized->federated().num_rounds() == 0) {
    BuildRunConfig(*normalized, ProbeSite(*normalized)).status().IgnoreError();
    CheckSpecPaths(*normalized, {"/data"}).IgnoreError();
  }
}

}  // namespace strata
