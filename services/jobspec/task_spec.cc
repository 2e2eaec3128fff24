// See task_spec.h.
#include "services/jobspec/task_spec.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/base/status_macros.h"
#include "services/jobspec/job_spec.h"
#include "services/jobspec/task_presets.h"

namespace strata {
namespace {

absl::Status Bad(const std::string& field, const std::string& why) {
  return SpecFieldError("task." + field, why);
}

// `preset` under the user's fields: a field the user set wins, repeated ones as a whole.
v1::TaskSpec Expand(const v1::TaskSpec& preset, const v1::TaskSpec& user) {
  v1::TaskSpec out = preset;
  if (!user.labels().empty()) out.clear_labels();
  if (!user.choice_fields().empty()) out.clear_choice_fields();
  if (!user.stop().empty()) out.clear_stop();
  out.MergeFrom(user);
  return out;
}

// Federated jobs take the task's definition only: each client renders its own examples
// (strata-edge --task_data), so nothing names, samples or evaluates files of the job's.
absl::Status CheckFederatedTask(const v1::TaskSpec& task) {
  for (const auto& [field, set] : {std::pair{"train_path", !task.train_path().empty()},
                                   {"dev_path", !task.dev_path().empty()},
                                   {"test_path", !task.test_path().empty()},
                                   {"num_train", task.num_train() != 0},
                                   {"num_dev", task.num_dev() != 0},
                                   {"num_test", task.num_test() != 0},
                                   {"sampling_seed", task.sampling_seed() != 0},
                                   {"num_demonstrations", task.num_demonstrations() != 0}}) {
    if (set) {
      return Bad(field,
                 "not used by federated jobs: each client trains on its own examples "
                 "(strata-edge --task_data)");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status NormalizeTask(v1::JobSpec& spec) {
  if (!spec.has_task()) return absl::OkStatus();
  const bool federated = spec.has_federated() && spec.federated().ByteSizeLong() > 0;
  v1::TaskSpec* task = spec.mutable_task();
  if (federated) STRATA_RETURN_IF_ERROR(CheckFederatedTask(*task));  // The user's own fields.
  if (!task->preset().empty()) {
    const v1::TaskSpec* preset = FindTaskPreset(task->preset());
    if (preset == nullptr) {
      return Bad("preset", absl::StrCat("\"", task->preset(), "\" is not one of ",
                                        absl::StrJoin(TaskPresetNames(), ", ")));
    }
    *task = Expand(*preset, *task);
    if (federated) {  // The preset's sample sizes: the clients' examples are what they are.
      task->clear_num_train();
      task->clear_num_dev();
      task->clear_num_test();
    }
  }
  if (task->kind() == v1::TASK_KIND_UNSPECIFIED) {
    return Bad("kind", "set CLASSIFICATION, MULTIPLE_CHOICE or GENERATION (or a preset)");
  }
  if (federated && task->kind() == v1::TASK_KIND_GENERATION) {
    return Bad("kind", "federated jobs train classification and multiple-choice tasks");
  }
  if (!federated && task->train_path().empty()) {
    return Bad("train_path", "needs the training examples (JSONL)");
  }
  if (task->template_().empty()) return Bad("template", "needs the prompt template");
  if (task->candidate_template().empty()) task->set_candidate_template(" {candidate}");
  const bool generation = task->kind() == v1::TASK_KIND_GENERATION;
  if (generation) {
    if (!task->label_field().empty()) {
      return Bad("label_field", "generation tasks take their answers from target_field");
    }
  } else if (task->label_field().empty()) {
    task->set_label_field("label");
  }
  if (task->kind() != v1::TASK_KIND_CLASSIFICATION && !task->labels().empty()) {
    return Bad("labels", "only classification tasks have label words");
  }
  if (task->kind() != v1::TASK_KIND_MULTIPLE_CHOICE && !task->choice_fields().empty()) {
    return Bad("choice_fields", "only multiple-choice tasks take candidates from fields");
  }
  if (!generation && !task->target_field().empty()) {
    return Bad("target_field", "only generation tasks have a target field");
  }
  switch (task->kind()) {
    case v1::TASK_KIND_CLASSIFICATION: {
      if (task->labels_size() < 2) return Bad("labels", "a classification task needs 2+ labels");
      std::set<std::string> values;
      for (int i = 0; i < task->labels_size(); ++i) {
        const v1::TaskLabel& label = task->labels(i);
        if (label.value().empty() || label.text().empty()) {
          return Bad(absl::StrCat("labels[", i, "]"), "needs a value and a text");
        }
        if (!values.insert(label.value()).second) {
          return Bad(absl::StrCat("labels[", i, "].value"),
                     absl::StrCat("\"", label.value(), "\" names two labels"));
        }
      }
      break;
    }
    case v1::TASK_KIND_MULTIPLE_CHOICE:
      if (task->choice_fields().empty()) return Bad("choice_fields", "name the candidates' fields");
      for (int i = 0; i < task->choice_fields_size(); ++i) {
        if (task->choice_fields(i).empty()) {
          return Bad(absl::StrCat("choice_fields[", i, "]"), "empty");
        }
      }
      break;
    default:
      if (task->target_field().empty()) return Bad("target_field", "name the answer's field");
      break;
  }
  if (task->score() == v1::CANDIDATE_SCORE_UNSPECIFIED) task->set_score(v1::CANDIDATE_SCORE_SUM);
  if (generation && task->score() != v1::CANDIDATE_SCORE_SUM) {
    return Bad("score", "generation tasks score no candidates");
  }
  if (task->objective() == v1::TASK_OBJECTIVE_UNSPECIFIED) {
    task->set_objective(v1::TASK_OBJECTIVE_CROSS_ENTROPY);
  }
  if (task->objective() != v1::TASK_OBJECTIVE_CROSS_ENTROPY) {
    if (generation) {
      return Bad("objective",
                 "accuracy and F1 rank candidates; a generation task trains on its answer tokens");
    }
    if (!spec.optimizer().has_zeroth_order()) {
      return Bad("objective", "accuracy and F1 have no gradient: only zeroth-order jobs use them");
    }
  }
  for (const auto& [name, value] : {std::pair{"num_train", task->num_train()},
                                    {"num_dev", task->num_dev()},
                                    {"num_test", task->num_test()},
                                    {"num_demonstrations", task->num_demonstrations()}}) {
    if (value < 0) return Bad(name, "must not be negative");
  }
  if (task->num_demonstrations() > 64) return Bad("num_demonstrations", "at most 64");
  if (task->sampling_seed() == 0 && !federated) task->set_sampling_seed(spec.training().seed());
  if (task->demonstration_separator().empty()) task->set_demonstration_separator("\n\n");
  if (task->max_new_tokens() < 0 || task->max_new_tokens() > 4096) {
    return Bad("max_new_tokens", "must be 0-4096");
  }
  if (task->max_new_tokens() == 0) task->set_max_new_tokens(32);
  if (task->stop().empty()) task->add_stop("\n");
  for (int i = 0; i < task->stop_size(); ++i) {
    if (task->stop(i).empty()) return Bad(absl::StrCat("stop[", i, "]"), "empty");
  }
  return absl::OkStatus();
}

}  // namespace strata
