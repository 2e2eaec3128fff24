// See task_loading.h.
#include "services/trainer/task_loading.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "runtime/base/splitmix.h"
#include "runtime/base/status_macros.h"

namespace strata {
namespace {

using task::RenderedExample;
using task::TaskExample;

struct Splits {
  std::vector<RenderedExample> train, dev, test;
};

absl::StatusOr<Splits> RenderSplits(const v1::TaskSpec& spec,
                                    const task::TaskDefinition& definition, bool want_test) {
  Splits out;
  STRATA_ASSIGN_OR_RETURN(std::vector<nlohmann::json> train_lines,
                          task::ReadJsonl(spec.train_path(), kMaxTaskExamples));
  const int64_t n = static_cast<int64_t>(train_lines.size());
  // One seeded shuffle of the training file. Without a dev_path its last num_dev lines are the
  // dev examples and the training sample comes from the rest (MeZO's way: a split smaller than
  // num_train + num_dev trains on what the dev set leaves).
  const std::vector<int64_t> order = task::SampleIndices(n, 0, spec.sampling_seed());
  int64_t available = n;
  if (spec.dev_path().empty()) {
    if (spec.num_dev() <= 0 || spec.num_dev() >= n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "task.dev_path is empty, so the dev examples are the last task.num_dev of ",
          spec.train_path(), "'s shuffled lines: num_dev must be in [1, ", n - 1, "], not ",
          spec.num_dev()));
    }
    available = n - spec.num_dev();
    STRATA_ASSIGN_OR_RETURN(
        out.dev, task::RenderSplit(definition, train_lines, spec.train_path(),
                                   std::vector<int64_t>(order.begin() + available, order.end())));
  } else {
    STRATA_ASSIGN_OR_RETURN(std::vector<nlohmann::json> dev_lines,
                            task::ReadJsonl(spec.dev_path(), kMaxTaskExamples));
    STRATA_ASSIGN_OR_RETURN(
        out.dev, task::RenderSplit(definition, dev_lines, spec.dev_path(),
                                   task::SampleIndices(static_cast<int64_t>(dev_lines.size()),
                                                       spec.num_dev(), spec.sampling_seed() + 1)));
  }
  const int64_t train_count =
      spec.num_train() > 0 ? std::min<int64_t>(spec.num_train(), available) : available;
  STRATA_ASSIGN_OR_RETURN(
      out.train, task::RenderSplit(definition, train_lines, spec.train_path(),
                                   std::vector<int64_t>(order.begin(), order.begin() + train_count)));
  if (out.dev.empty()) return absl::InvalidArgumentError("the task has no dev examples");
  if (want_test && !spec.test_path().empty()) {
    STRATA_ASSIGN_OR_RETURN(std::vector<nlohmann::json> test_lines,
                            task::ReadJsonl(spec.test_path(), kMaxTaskExamples));
    STRATA_ASSIGN_OR_RETURN(
        out.test,
        task::RenderSplit(definition, test_lines, spec.test_path(),
                          task::SampleIndices(static_cast<int64_t>(test_lines.size()),
                                              spec.num_test(), spec.sampling_seed() + 2)));
  }
  return out;
}

absl::StatusOr<TaskExample> Tokenized(const task::TaskDefinition& definition,
                                      const RenderedExample& rendered, const Tokenizer& tokenizer,
                                      const ModelConfig& model, const std::string& source,
                                      absl::Span<const RenderedExample> demonstrations = {}) {
  absl::StatusOr<TaskExample> example =
      task::TokenizeExample(definition, rendered, tokenizer, demonstrations);
  if (!example.ok()) {
    return absl::Status(example.status().code(),
                        absl::StrCat(source, ":", rendered.line, ": ", example.status().message()));
  }
  auto check = [&](const std::vector<int32_t>& ids) -> absl::Status {
    for (const int32_t id : ids) {
      if (id < 0 || id >= model.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ":", rendered.line, ": token id ", id,
                         " is outside the model's vocabulary (", model.vocab_size,
                         "): the tokenizer does not fit the model"));
      }
    }
    return absl::OkStatus();
  };
  STRATA_RETURN_IF_ERROR(check(example->prompt));
  for (const std::vector<int32_t>& c : example->candidates) STRATA_RETURN_IF_ERROR(check(c));
  return example;
}

absl::StatusOr<std::vector<TaskExample>> TokenizeAll(const task::TaskDefinition& definition,
                                                     const std::vector<RenderedExample>& split,
                                                     const Tokenizer& tokenizer,
                                                     const ModelConfig& model,
                                                     const std::string& source) {
  std::vector<TaskExample> out;
  out.reserve(split.size());
  for (const RenderedExample& rendered : split) {
    STRATA_ASSIGN_OR_RETURN(TaskExample example,
                            Tokenized(definition, rendered, tokenizer, model, source));
    out.push_back(std::move(example));
  }
  return out;
}

}  // namespace

task::TaskDefinition TaskDefinitionFromSpec(const v1::TaskSpec& spec) {
  task::TaskDefinition d;
  d.name = spec.preset().empty() ? "task" : spec.preset();
  switch (spec.kind()) {
    case v1::TASK_KIND_MULTIPLE_CHOICE:
      d.kind = task::TaskKind::kMultipleChoice;
      break;
    case v1::TASK_KIND_GENERATION:
      d.kind = task::TaskKind::kGeneration;
      break;
    default:
      d.kind = task::TaskKind::kClassification;
      break;
  }
  d.prompt_template = spec.template_();
  d.candidate_template = spec.candidate_template();
  d.label_field = spec.label_field();
  for (const v1::TaskLabel& label : spec.labels()) d.labels.push_back({label.value(), label.text()});
  d.choice_fields.assign(spec.choice_fields().begin(), spec.choice_fields().end());
  d.target_field = spec.target_field();
  d.score = spec.score() == v1::CANDIDATE_SCORE_MEAN ? task::CandidateScore::kMean
                                                     : task::CandidateScore::kSum;
  d.objective = spec.objective() == v1::TASK_OBJECTIVE_ACCURACY ? task::TaskObjective::kAccuracy
                : spec.objective() == v1::TASK_OBJECTIVE_F1     ? task::TaskObjective::kF1
                                                                : task::TaskObjective::kCrossEntropy;
  d.demonstration_separator = spec.demonstration_separator();
  d.max_new_tokens = spec.max_new_tokens();
  d.stop.assign(spec.stop().begin(), spec.stop().end());
  return d;
}

absl::StatusOr<task::TaskData> LoadTaskData(const v1::TaskSpec& spec, const Tokenizer& tokenizer,
                                            const ModelConfig& model) {
  task::TaskData data;
  data.definition = TaskDefinitionFromSpec(spec);
  STRATA_ASSIGN_OR_RETURN(Splits splits, RenderSplits(spec, data.definition, false));
  STRATA_ASSIGN_OR_RETURN(data.train, TokenizeAll(data.definition, splits.train, tokenizer, model,
                                                  spec.train_path()));
  STRATA_ASSIGN_OR_RETURN(
      data.dev, TokenizeAll(data.definition, splits.dev, tokenizer, model,
                            spec.dev_path().empty() ? spec.train_path() : spec.dev_path()));
  return data;
}

absl::StatusOr<std::vector<TaskExample>> TokenizeTaskExamples(
    const task::TaskDefinition& definition, const std::vector<nlohmann::json>& lines,
    const std::string& path, const Tokenizer& tokenizer, const ModelConfig& model) {
  std::vector<int64_t> all(lines.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  STRATA_ASSIGN_OR_RETURN(std::vector<RenderedExample> rendered,
                          task::RenderSplit(definition, lines, path, all));
  return TokenizeAll(definition, rendered, tokenizer, model, path);
}

absl::StatusOr<std::vector<TaskExample>> LoadTaskEvalExamples(const v1::TaskSpec& spec,
                                                             const Tokenizer& tokenizer,
                                                             const ModelConfig& model,
                                                             int shots) {
  const task::TaskDefinition definition = TaskDefinitionFromSpec(spec);
  STRATA_ASSIGN_OR_RETURN(Splits splits, RenderSplits(spec, definition, true));
  const bool test = !splits.test.empty();
  const std::vector<RenderedExample>& scored = test ? splits.test : splits.dev;
  const std::string source =
      test ? spec.test_path() : (spec.dev_path().empty() ? spec.train_path() : spec.dev_path());
  if (shots > static_cast<int>(splits.train.size())) {
    return absl::InvalidArgumentError(absl::StrCat(shots, " demonstrations, but the training sample has ",
                                                   splits.train.size(), " examples"));
  }
  std::vector<TaskExample> out;
  out.reserve(scored.size());
  for (size_t i = 0; i < scored.size(); ++i) {
    std::vector<RenderedExample> demonstrations;
    if (shots > 0) {
      const std::vector<int64_t> picks = task::SampleIndices(
          static_cast<int64_t>(splits.train.size()), shots, spec.sampling_seed() * 31 + i);
      for (const int64_t p : picks) demonstrations.push_back(splits.train[p]);
    }
    STRATA_ASSIGN_OR_RETURN(TaskExample example, Tokenized(definition, scored[i], tokenizer, model,
                                                           source, demonstrations));
    out.push_back(std::move(example));
  }
  return out;
}

}  // namespace strata
