// LoRA's hyperparameters as Hugging Face PEFT writes them (adapter_config.json): rank r,
// lora_alpha (the update is scaled by alpha / r) and the target modules. Keys that change the
// maths and are not implemented (rsLoRA, DoRA, trained biases, modules_to_save, per-layer rank
// or alpha patterns, a regex target) are refused by name.
#ifndef STRATA_RUNTIME_PEFT_LORA_CONFIG_H_
#define STRATA_RUNTIME_PEFT_LORA_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/model/model_config.h"

namespace strata {

struct LoraConfig {
  int r = 8;
  float alpha = 16.0f;
  // Module names matched as PEFT matches them (the whole module path, or its last components
  // after a '.'), or the single entry "all-linear" for every linear layer of every block (for
  // OPT-350m not its project_in/project_out, which PEFT's "all-linear" would take: its
  // adapter_config.json then lists the block modules).
  std::vector<std::string> target_modules;

  float scale() const { return alpha / static_cast<float>(r); }
};

// MeZO's choice: the query and value projections (GPT-2: its fused c_attn).
std::vector<std::string> DefaultLoraTargets(ModelFamily family);

// Parses adapter_config.json; `source` names it in errors.
absl::StatusOr<LoraConfig> ParsePeftConfig(absl::string_view json_text, absl::string_view source);

// adapter_config.json for `config` on a model of `model`'s family, as PEFT writes it.
std::string ToPeftConfigJson(const LoraConfig& config, const ModelConfig& model);

}  // namespace strata

#endif  // STRATA_RUNTIME_PEFT_LORA_CONFIG_H_
