// Task examples: JSONL files read into JSON objects, MeZO's seeded sampling of train / dev /
// test examples, and each example rendered (prompt text, candidate texts, the right candidate)
// and tokenized (prompt ids, each candidate's ids). k-shot demonstrations are rendered examples
// whose prompt and right answer precede the evaluated prompt.
#ifndef STRATA_RUNTIME_TASK_TASK_EXAMPLES_H_
#define STRATA_RUNTIME_TASK_TASK_EXAMPLES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"
#include "runtime/data/tokenizer.h"
#include "runtime/task/task_definition.h"

namespace strata::task {

// One JSON object per non-empty line; errors name the file and line. `max_examples` bounds the
// file (0: none) so a hostile file cannot exhaust memory.
absl::StatusOr<std::vector<nlohmann::json>> ReadJsonl(const std::string& path,
                                                      int64_t max_examples = 0);

// `count` distinct indices of [0, n) (all when count is 0 or >= n), in the order of a seeded
// Fisher-Yates shuffle, skipping its first `skip` (so a second draw with the same seed and
// skip = the first's count is disjoint from it).
std::vector<int64_t> SampleIndices(int64_t n, int64_t count, uint64_t seed, int64_t skip = 0);

struct RenderedExample {
  std::string prompt;
  std::vector<std::string> candidates;  // Classification / multiple choice: each candidate's
                                        // text; generation: the accepted answers.
  int label = 0;                        // The right candidate (generation: 0).
  int64_t line = 0;                     // 1-based line in its file, for messages.
};

// Renders `example` (`line` of `source`) as `task` says; errors name both.
absl::StatusOr<RenderedExample> RenderExample(const TaskDefinition& task,
                                              const nlohmann::json& example,
                                              const std::string& source, int64_t line);

struct TaskExample {
  std::vector<int32_t> prompt;                   // With the tokenizer's leading special token.
  std::vector<std::vector<int32_t>> candidates;  // Generation: the first answer only.
  int label = 0;
  std::vector<std::string> answers;              // Generation: every accepted answer.
};

// Tokenizes `rendered`; `demonstrations` (rendered examples with their right answers) precede
// the prompt, each followed by `task.demonstration_separator`.
absl::StatusOr<TaskExample> TokenizeExample(const TaskDefinition& task,
                                            const RenderedExample& rendered,
                                            const Tokenizer& tokenizer,
                                            absl::Span<const RenderedExample> demonstrations = {});

// The examples of one split: `path`'s lines at `indices` (SampleIndices), rendered.
absl::StatusOr<std::vector<RenderedExample>> RenderSplit(const TaskDefinition& task,
                                                         const std::vector<nlohmann::json>& lines,
                                                         const std::string& path,
                                                         const std::vector<int64_t>& indices);

}  // namespace strata::task

#endif  // STRATA_RUNTIME_TASK_TASK_EXAMPLES_H_
