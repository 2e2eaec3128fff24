// See task_batch.h.
#include "runtime/task/task_batch.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"

namespace strata::task {

absl::Status BuildTaskBatch(const TaskDefinition& task,
                            absl::Span<const TaskExample* const> examples, int max_length,
                            TaskBatch* out) {
  if (max_length < 2) return absl::InvalidArgumentError("task rows need max_length >= 2");
  struct Row {
    const std::vector<int32_t>* prompt;
    const std::vector<int32_t>* answer;
    int64_t drop;  // Prompt tokens cut from the start.
    int length;    // Tokens in the row (prompt + answer - 1 - drop).
  };
  std::vector<Row> rows;
  std::vector<CandidateGroup> groups;
  const bool candidates = task.kind != TaskKind::kGeneration;
  for (const TaskExample* example : examples) {
    if (candidates) {
      groups.push_back({static_cast<int>(rows.size()),
                        static_cast<int>(example->candidates.size()), example->label});
    }
    for (const std::vector<int32_t>& answer : example->candidates) {
      const int64_t full = static_cast<int64_t>(example->prompt.size() + answer.size()) - 1;
      const int64_t drop = std::max<int64_t>(0, full - max_length);
      if (drop >= static_cast<int64_t>(example->prompt.size())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "an answer of ", answer.size(), " tokens does not fit data.seq_len ", max_length));
      }
      rows.push_back({&example->prompt, &answer, drop, static_cast<int>(full - drop)});
      if (!candidates) break;
    }
  }
  if (rows.empty()) return absl::InvalidArgumentError("an empty task batch");
  int longest = 0;
  for (const Row& row : rows) longest = std::max(longest, row.length);
  const int T = std::min(max_length, (longest + 7) / 8 * 8);
  out->rows = static_cast<int>(rows.size());
  out->T = T;
  out->tokens.assign(static_cast<size_t>(out->rows) * T, 0);
  out->targets.assign(out->tokens.size(), -1);
  for (size_t r = 0; r < rows.size(); ++r) {
    const Row& row = rows[r];
    int32_t* tokens = out->tokens.data() + r * T;
    int32_t* targets = out->targets.data() + r * T;
    const int64_t prompt = static_cast<int64_t>(row.prompt->size()) - row.drop;
    auto at = [&](int64_t i) {  // Token i of prompt (after the cut) + answer.
      return i < prompt ? (*row.prompt)[row.drop + i] : (*row.answer)[i - prompt];
    };
    for (int i = 0; i < row.length; ++i) {
      tokens[i] = at(i);
      // Position i predicts token i + 1: scored when that is an answer token.
      if (i + 1 >= prompt) targets[i] = at(i + 1);
    }
  }
  out->has_candidates = candidates;
  out->objective = CandidateObjective(std::move(groups), task.score, task.objective);
  return absl::OkStatus();
}

absl::StatusOr<TaskBatcher> TaskBatcher::Create(const TaskDefinition* task,
                                                const std::vector<TaskExample>* examples,
                                                Options options) {
  if (options.batch < 1 || options.world_size < 1 || options.rank < 0 ||
      options.rank >= options.world_size) {
    return absl::InvalidArgumentError("task batches: bad batch, rank or world size");
  }
  const int64_t global = static_cast<int64_t>(options.batch) * options.world_size;
  if (static_cast<int64_t>(examples->size()) < global) {
    return absl::InvalidArgumentError(
        absl::StrCat("the task has ", examples->size(), " training examples, fewer than one batch of ",
                     global, " (data.batch_size x ranks)"));
  }
  return TaskBatcher(task, examples, options);
}

absl::Status TaskBatcher::Next(TaskBatch* batch) {
  const int64_t global = static_cast<int64_t>(options_.batch) * options_.world_size;
  const int64_t per_epoch = static_cast<int64_t>(examples_->size()) / global;
  if (position_.cursor >= per_epoch) {
    ++position_.epoch;
    position_.cursor = 0;
  }
  if (order_epoch_ != position_.epoch) {
    order_ = SampleIndices(static_cast<int64_t>(examples_->size()), 0,
                           options_.seed * 0x9E3779B97F4A7C15ULL + position_.epoch);
    order_epoch_ = position_.epoch;
  }
  std::vector<const TaskExample*> chosen;
  const int64_t base = position_.cursor * global;
  for (int b = 0; b < options_.batch; ++b) {
    chosen.push_back(&(*examples_)[order_[base + static_cast<int64_t>(b) * options_.world_size +
                                          options_.rank]]);
  }
  ++position_.cursor;
  return BuildTaskBatch(*task_, chosen, options_.max_length, batch);
}

}  // namespace strata::task
