// See spec_limits.h.
#include "services/jobspec/spec_limits.h"

#include "absl/strings/str_cat.h"

namespace strata {
namespace {

absl::Status TooBig(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("spec.", field, ": ", why));
}

}  // namespace

absl::Status CheckSpecLimits(const v1::JobSpec& spec) {
  if (const size_t bytes = spec.ByteSizeLong(); bytes > kMaxSpecBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec: ", bytes, " bytes serialized; at most ", kMaxSpecBytes));
  }
  if (spec.model().config_json().size() > kMaxConfigJsonBytes) {
    return TooBig("model.config_json", absl::StrCat("at most ", kMaxConfigJsonBytes, " bytes"));
  }
  if (spec.labels_size() > kMaxLabels) {
    return TooBig("labels", absl::StrCat(spec.labels_size(), " labels; at most ", kMaxLabels));
  }
  for (const auto& [key, value] : spec.labels()) {
    if (key.empty() || key.size() > kMaxLabelKeyBytes) {
      return TooBig("labels", absl::StrCat("a key must be 1-", kMaxLabelKeyBytes, " bytes"));
    }
    if (value.size() > kMaxLabelValueBytes) {
      return TooBig(absl::StrCat("labels[", key, "]"),
                    absl::StrCat("at most ", kMaxLabelValueBytes, " bytes"));
    }
  }
  if (spec.data().train_paths_size() > kMaxDataPaths) {
    return TooBig("data.train_paths", absl::StrCat("at most ", kMaxDataPaths, " paths"));
  }
  if (spec.data().eval_paths_size() > kMaxDataPaths) {
    return TooBig("data.eval_paths", absl::StrCat("at most ", kMaxDataPaths, " paths"));
  }
  if (spec.training().max_steps() > kMaxSteps) {
    return TooBig("training.max_steps", absl::StrCat("at most ", kMaxSteps));
  }
  if (spec.resources().cores_per_rank() > kMaxCoresPerRank) {
    return TooBig("resources.cores_per_rank", absl::StrCat("at most ", kMaxCoresPerRank));
  }
  return absl::OkStatus();
}

}  // namespace strata
