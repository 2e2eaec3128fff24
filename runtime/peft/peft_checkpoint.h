// Adapters as files users take elsewhere: Hugging Face PEFT's directory layout
// (adapter_config.json + adapter_model.safetensors with PEFT's tensor names) for LoRA and for
// prefix tuning (PREFIX_TUNING without prefix_projection: "prompt_embeddings"), read and written
// here, each file crash-safely; and `merge`, which folds LoRA adapters into a plain Hugging Face
// checkpoint of the base model.
#ifndef STRATA_RUNTIME_PEFT_PEFT_CHECKPOINT_H_
#define STRATA_RUNTIME_PEFT_PEFT_CHECKPOINT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/model/transformer.h"
#include "runtime/peft/lora_adapters.h"
#include "runtime/peft/prefix_adapters.h"
#include "runtime/peft/trainable_adapters.h"

namespace strata {

// Writes dir/adapter_config.json and dir/adapter_model.safetensors (fp32).
absl::Status SaveLoraAdapter(const LoraAdapters& adapters, const ModelConfig& model,
                             const std::string& dir);

// Reads a PEFT LoRA directory for a model laid out as `base`. Every adapter tensor must be
// present with its shape, in any float dtype; a tensor the config does not imply is an error
// naming it.
absl::StatusOr<std::unique_ptr<LoraAdapters>> LoadLoraAdapter(const std::string& dir,
                                                              const ParamLayout& base);

// Either kind, by its peft_type.
absl::Status SaveAdapters(const TrainableAdapters& adapters, const ModelConfig& model,
                          const std::string& dir);
absl::StatusOr<std::unique_ptr<TrainableAdapters>> LoadAdapters(const std::string& dir,
                                                                const ParamLayout& base);
// The weights of the directory's adapters into `into`, which must be the same adapters (kind,
// tensor names and shapes; FAILED_PRECONDITION naming both otherwise).
absl::Status LoadAdapterWeights(const std::string& dir, const ParamLayout& base,
                                TrainableAdapters& into);

// The base checkpoint at `base_dir` with the adapters at `adapter_dir` folded in
// (W += alpha / r * B A), saved as a plain Hugging Face checkpoint at `out_dir`.
absl::Status MergeLoraCheckpoint(const std::string& base_dir, const std::string& adapter_dir,
                                 const std::string& out_dir);

}  // namespace strata

#endif  // STRATA_RUNTIME_PEFT_PEFT_CHECKPOINT_H_
