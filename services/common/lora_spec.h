// The LoRA adapters a job's peft.lora asks for, the same for every process that builds them (a
// trainer rank, a federated client): r, alpha, the targets (the family's query and value
// projections when none are named), initialized from `init_seed`. Errors name spec.peft.lora.
#ifndef STRATA_SERVICES_COMMON_LORA_SPEC_H_
#define STRATA_SERVICES_COMMON_LORA_SPEC_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "proto/strata/v1/job.pb.h"
#include "runtime/model/transformer.h"
#include "runtime/peft/lora_adapters.h"
#include "runtime/peft/lora_config.h"

namespace strata {

inline absl::StatusOr<std::unique_ptr<LoraAdapters>> AdaptersForSpec(const v1::LoraSpec& spec,
                                                                     const Transformer& model,
                                                                     uint64_t init_seed) {
  LoraConfig config;
  config.r = spec.r();
  config.alpha = static_cast<float>(spec.alpha());
  config.target_modules.assign(spec.target_modules().begin(), spec.target_modules().end());
  if (config.target_modules.empty()) {
    config.target_modules = DefaultLoraTargets(model.config().family);
  }
  absl::StatusOr<std::unique_ptr<LoraAdapters>> lora = LoraAdapters::Create(model.layout(), config);
  if (!lora.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("spec.peft.lora: ", lora.status().message()));
  }
  (*lora)->Initialize(init_seed);
  return lora;
}

}  // namespace strata

#endif  // STRATA_SERVICES_COMMON_LORA_SPEC_H_
