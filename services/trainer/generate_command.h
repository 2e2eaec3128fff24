// `strata-train generate`: text from a Hugging Face checkpoint directory (or a job's export),
// optionally with a PEFT adapter directory (LoRA or prefix) attached, decoded with the runtime's
// Generator (runtime/generate) and printed to stdout.
//
// The flags it shares with training (--init_from, --tokenizer, --seed, --threads) are
// train_main's, handed over in GenerateShared; its own (--adapter, --prompt, --max_new_tokens,
// --temperature, --top_k, --top_p, --stop) are defined in generate_command.cc. Any other Strata
// flag set to a value of its own is refused by name, as is any of these flags given without the
// command.
#ifndef STRATA_SERVICES_TRAINER_GENERATE_COMMAND_H_
#define STRATA_SERVICES_TRAINER_GENERATE_COMMAND_H_

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

// A PEFT adapter directory for the commands (generate, eval).
ABSL_DECLARE_FLAG(std::string, adapter);

namespace strata {

// What train_main's flags give the command.
struct GenerateShared {
  std::string init_from;  // --init_from
  std::string tokenizer;  // --tokenizer; empty: the model directory's, else the byte tokenizer.
  uint64_t seed = 1;      // --seed
  int threads = 0;        // --threads; 0: one per CPU.
};

// Runs the command: `args` are the positional arguments ("generate" first; no other is
// accepted). Writes the generated text and a newline to `out`, and a line about it to stderr.
// Errors name the flag; bad flag values are UsageErrors.
absl::Status RunGenerate(const std::vector<std::string>& args, const GenerateShared& shared,
                         std::FILE* out);

// Fails naming the command's own flags that are set, for a run without the command.
absl::Status RefuseGenerateFlags();

// --stop's value: a comma-separated list in which "\," is a comma, "\n" a newline, "\t" a tab
// and "\\" a backslash. Fails on an empty entry or another escape.
absl::StatusOr<std::vector<std::string>> ParseStopList(const std::string& value);

}  // namespace strata

#endif  // STRATA_SERVICES_TRAINER_GENERATE_COMMAND_H_
