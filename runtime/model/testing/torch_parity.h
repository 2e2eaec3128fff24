// Shared pieces of the tests that compare Strata with the independent PyTorch reference
// (runtime/model/testing/torch_reference.py through torch_compare.py): whether torch is
// installed, random small configs of every family with their variants, parameters scaled so
// every path carries signal, and a run of the reference on a checkpoint directory.
#ifndef STRATA_RUNTIME_MODEL_TESTING_TORCH_PARITY_H_
#define STRATA_RUNTIME_MODEL_TESTING_TORCH_PARITY_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/model/transformer.h"
#include "storage/safetensors/safetensors.h"

namespace strata::testing_parity {

inline constexpr char kPython[] = "/usr/bin/python3";
inline constexpr char kScript[] = "runtime/model/testing/torch_compare.py";

// False (with the reason) when python3 cannot import torch.
bool TorchAvailable(std::string* why);

struct Case {
  ModelConfig config;
  int B, T;
  uint64_t seed;
};

// A random small config of `family`; `seed % 4` picks the family's variant.
Case RandomCase(ModelFamily family, uint32_t seed);

// Norm weights near 1, biases and weights large enough that every path carries signal.
void ScaleParameters(Transformer& model, uint64_t seed);

// Runs the reference on `dir` (config.json, the checkpoint, an optional PEFT adapter) for the
// batch; returns its torch_out.safetensors ("logits", "loss", "grad/<name>").
absl::StatusOr<SafetensorsFile> RunReference(const std::string& dir, int B, int T,
                                             const std::vector<int32_t>& tokens,
                                             const std::vector<int32_t>& targets);

// Reads one float tensor of the reference's output (empty when absent).
std::vector<float> ReadOutput(const SafetensorsFile& out, const std::string& name);

// Random tokens and targets (B x T each) for `c`'s vocabulary from `rng`.
void RandomBatch(const Case& c, std::mt19937& rng, std::vector<int32_t>* tokens,
                 std::vector<int32_t>* targets);

// max |logit - reference logit| / (1 + max |reference logit|) of `model` on `tokens` against
// the reference's "logits" in `out` (the parity bound is 2e-5).
absl::StatusOr<double> LogitError(Transformer& model, const SafetensorsFile& out,
                                  const std::vector<int32_t>& tokens, int B, int T);

}  // namespace strata::testing_parity

#endif  // STRATA_RUNTIME_MODEL_TESTING_TORCH_PARITY_H_
