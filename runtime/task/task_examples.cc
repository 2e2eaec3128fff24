// See task_examples.h.
#include "runtime/task/task_examples.h"

#include <fstream>
#include <numeric>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "runtime/base/splitmix.h"
#include "runtime/base/status_macros.h"
#include "runtime/task/prompt_template.h"

namespace strata::task {

using Json = nlohmann::json;

absl::StatusOr<std::vector<Json>> ReadJsonl(const std::string& path, int64_t max_examples) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read task data ", path));
  std::vector<Json> out;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    Json value = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded() || !value.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", number, ": not a JSON object"));
    }
    value["__line"] = number;
    out.push_back(std::move(value));
    if (max_examples > 0 && static_cast<int64_t>(out.size()) > max_examples) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": more than ", max_examples, " examples"));
    }
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no examples"));
  return out;
}

std::vector<int64_t> SampleIndices(int64_t n, int64_t count, uint64_t seed, int64_t skip) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  uint64_t state = seed ^ 0x7A5C4B3D2E1F0987ULL;
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(SplitMix64(state) % static_cast<uint64_t>(i + 1));
    std::swap(order[i], order[j]);
  }
  const int64_t begin = std::min(skip, n);
  const int64_t end = count <= 0 ? n : std::min(n, begin + count);
  return std::vector<int64_t>(order.begin() + begin, order.begin() + end);
}

absl::StatusOr<RenderedExample> RenderExample(const TaskDefinition& task, const Json& example,
                                              const std::string& source, int64_t line) {
  auto where = [&](const absl::Status& status) {
    return absl::Status(status.code(), absl::StrCat(source, ":", line, ": ", status.message()));
  };
  RenderedExample out;
  out.line = line;
  absl::StatusOr<std::string> prompt = RenderTemplate(task.prompt_template, example);
  if (!prompt.ok()) return where(prompt.status());
  out.prompt = *std::move(prompt);
  auto add_candidate = [&](const std::string& value) -> absl::Status {
    absl::StatusOr<std::string> text = RenderTemplate(task.candidate_template, example, &value);
    if (!text.ok()) return where(text.status());
    out.candidates.push_back(*std::move(text));
    return absl::OkStatus();
  };
  const Json* label = nullptr;
  if (task.kind != TaskKind::kGeneration) {
    label = FieldAt(example, task.label_field);
    if (label == nullptr) {
      return where(absl::InvalidArgumentError(
          absl::StrCat("no label field \"", task.label_field, "\"")));
    }
  }
  switch (task.kind) {
    case TaskKind::kClassification: {
      absl::StatusOr<std::string> value = ScalarText(*label, task.label_field);
      if (!value.ok()) return where(value.status());
      out.label = -1;
      for (size_t c = 0; c < task.labels.size(); ++c) {
        STRATA_RETURN_IF_ERROR(add_candidate(task.labels[c].text));
        if (task.labels[c].value == *value) out.label = static_cast<int>(c);
      }
      if (out.label < 0) {
        return where(absl::InvalidArgumentError(absl::StrCat(
            "label \"", *value, "\" (", task.label_field, ") is not one of the task's labels")));
      }
      break;
    }
    case TaskKind::kMultipleChoice: {
      std::vector<std::string> choices;
      for (const std::string& field : task.choice_fields) {
        const Json* value = FieldAt(example, field);
        if (value == nullptr) {
          return where(absl::InvalidArgumentError(absl::StrCat("no choice field \"", field, "\"")));
        }
        if (value->is_array()) {
          for (const Json& item : *value) {
            absl::StatusOr<std::string> text = ScalarText(item, field);
            if (!text.ok()) return where(text.status());
            choices.push_back(*std::move(text));
          }
        } else {
          absl::StatusOr<std::string> text = ScalarText(*value, field);
          if (!text.ok()) return where(text.status());
          choices.push_back(*std::move(text));
        }
      }
      if (choices.size() < 2) {
        return where(absl::InvalidArgumentError("a multiple-choice example needs 2+ choices"));
      }
      for (const std::string& choice : choices) STRATA_RETURN_IF_ERROR(add_candidate(choice));
      if (label->is_number_integer()) {
        out.label = label->get<int>();
      } else if (label->is_string()) {  // The right choice's text (ReCoRD-style answers).
        out.label = -1;
        for (size_t c = 0; c < choices.size(); ++c) {
          if (choices[c] == label->get<std::string>()) out.label = static_cast<int>(c);
        }
      } else if (label->is_array() && !label->empty() && label->front().is_string()) {
        out.label = -1;
        for (size_t c = 0; c < choices.size() && out.label < 0; ++c) {
          for (const Json& answer : *label) {
            if (answer.is_string() && choices[c] == answer.get<std::string>()) {
              out.label = static_cast<int>(c);
            }
          }
        }
      } else {
        out.label = -1;
      }
      if (out.label < 0 || out.label >= static_cast<int>(choices.size())) {
        return where(absl::InvalidArgumentError(absl::StrCat(
            "label (", task.label_field, ") names none of the ", choices.size(), " choices")));
      }
      break;
    }
    case TaskKind::kGeneration: {
      const Json* target = FieldAt(example, task.target_field);
      if (target == nullptr) {
        return where(absl::InvalidArgumentError(
            absl::StrCat("no target field \"", task.target_field, "\"")));
      }
      std::vector<std::string> answers;
      if (target->is_array()) {
        for (const Json& item : *target) {
          absl::StatusOr<std::string> text = ScalarText(item, task.target_field);
          if (!text.ok()) return where(text.status());
          answers.push_back(*std::move(text));
        }
      } else {
        absl::StatusOr<std::string> text = ScalarText(*target, task.target_field);
        if (!text.ok()) return where(text.status());
        answers.push_back(*std::move(text));
      }
      if (answers.empty()) {
        return where(absl::InvalidArgumentError(
            absl::StrCat("target field \"", task.target_field, "\" holds no answer")));
      }
      for (const std::string& answer : answers) STRATA_RETURN_IF_ERROR(add_candidate(answer));
      break;
    }
  }
  return out;
}

absl::StatusOr<TaskExample> TokenizeExample(const TaskDefinition& task,
                                            const RenderedExample& rendered,
                                            const Tokenizer& tokenizer,
                                            absl::Span<const RenderedExample> demonstrations) {
  std::string context;
  for (const RenderedExample& demo : demonstrations) {
    absl::StrAppend(&context, demo.prompt, demo.candidates[demo.label],
                    task.demonstration_separator);
  }
  absl::StrAppend(&context, rendered.prompt);
  TaskExample out;
  out.label = rendered.label;
  if (tokenizer.bos_id() >= 0) out.prompt.push_back(tokenizer.bos_id());
  STRATA_ASSIGN_OR_RETURN(std::vector<int32_t> prompt,
                          tokenizer.Encode(context, Tokenizer::EncodeOptions{false}));
  out.prompt.insert(out.prompt.end(), prompt.begin(), prompt.end());
  if (out.prompt.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("line ", rendered.line, ": an empty prompt"));
  }
  const size_t scored = task.kind == TaskKind::kGeneration ? 1 : rendered.candidates.size();
  for (size_t c = 0; c < scored; ++c) {
    STRATA_ASSIGN_OR_RETURN(std::vector<int32_t> ids,
                            tokenizer.Encode(rendered.candidates[c], Tokenizer::EncodeOptions{false}));
    if (ids.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", rendered.line, ": candidate \"", rendered.candidates[c], "\" has no tokens"));
    }
    out.candidates.push_back(std::move(ids));
  }
  if (task.kind == TaskKind::kGeneration) out.answers = rendered.candidates;
  return out;
}

absl::StatusOr<std::vector<RenderedExample>> RenderSplit(const TaskDefinition& task,
                                                         const std::vector<Json>& lines,
                                                         const std::string& path,
                                                         const std::vector<int64_t>& indices) {
  std::vector<RenderedExample> out;
  out.reserve(indices.size());
  for (const int64_t i : indices) {
    const Json& example = lines[i];
    STRATA_ASSIGN_OR_RETURN(RenderedExample rendered,
                            RenderExample(task, example, path, example.value("__line", i + 1)));
    out.push_back(std::move(rendered));
  }
  return out;
}

}  // namespace strata::task
