// The adapters a job's peft section asks for, the same for every process that builds them (a
// trainer rank, a federated client), from the same seed: LoRA (r, alpha, the targets: the
// family's query and value projections when none are named) or a prefix (num_tokens, standard
// normal or MeZO's initialization from the model's activations for token ids drawn from the
// seed). Errors name the spec.peft field.
#ifndef STRATA_SERVICES_COMMON_ADAPTER_SPEC_H_
#define STRATA_SERVICES_COMMON_ADAPTER_SPEC_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "proto/strata/v1/job.pb.h"
#include "runtime/base/splitmix.h"
#include "runtime/model/transformer.h"
#include "runtime/peft/lora_adapters.h"
#include "runtime/peft/lora_config.h"
#include "runtime/peft/prefix_adapters.h"

namespace strata {

// `model` holds its weights (a prefix initialized from activations runs it).
inline absl::StatusOr<std::unique_ptr<TrainableAdapters>> AdaptersForSpec(const v1::PeftSpec& spec,
                                                                          Transformer& model,
                                                                          uint64_t seed) {
  if (spec.has_prefix()) {
    absl::StatusOr<std::unique_ptr<PrefixAdapters>> prefix =
        PrefixAdapters::Create(model.layout(), spec.prefix().num_tokens());
    if (!prefix.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.peft.prefix: ", prefix.status().message()));
    }
    if (!spec.prefix().init_from_activations()) {
      (*prefix)->Initialize(seed);
      return std::unique_ptr<TrainableAdapters>(*std::move(prefix));
    }
    uint64_t state = TensorStream(seed, 0);
    std::vector<int32_t> tokens(spec.prefix().num_tokens());
    for (int32_t& t : tokens) {
      t = static_cast<int32_t>(UniformOpen01(state) * model.config().vocab_size);
    }
    if (absl::Status s = (*prefix)->InitializeFromActivations(model, tokens); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.peft.prefix.init_from_activations: ", s.message()));
    }
    return std::unique_ptr<TrainableAdapters>(*std::move(prefix));
  }
  const v1::LoraSpec& lora_spec = spec.lora();
  LoraConfig config;
  config.r = lora_spec.r();
  config.alpha = static_cast<float>(lora_spec.alpha());
  config.target_modules.assign(lora_spec.target_modules().begin(),
                               lora_spec.target_modules().end());
  if (config.target_modules.empty()) {
    config.target_modules = DefaultLoraTargets(model.config().family);
  }
  absl::StatusOr<std::unique_ptr<LoraAdapters>> lora = LoraAdapters::Create(model.layout(), config);
  if (!lora.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("spec.peft.lora: ", lora.status().message()));
  }
  (*lora)->Initialize(seed);
  return std::unique_ptr<TrainableAdapters>(*std::move(lora));
}

}  // namespace strata

#endif  // STRATA_SERVICES_COMMON_ADAPTER_SPEC_H_
