// A task as the runtime runs it (docs/tasks.md): how a JSONL example becomes a prompt and
// candidate answers, which candidate is right, and what training minimizes. Built from a
// strata.v1.TaskSpec by services/common/task_spec.h, with every default already applied.
#ifndef STRATA_RUNTIME_TASK_TASK_DEFINITION_H_
#define STRATA_RUNTIME_TASK_TASK_DEFINITION_H_

#include <string>
#include <vector>

namespace strata::task {

enum class TaskKind { kClassification, kMultipleChoice, kGeneration };
// A candidate's score: the sum of its tokens' log-probabilities after the prompt, or their mean.
enum class CandidateScore { kSum, kMean };
// What training minimizes: cross-entropy over the candidates' scores (generation: the answer
// tokens' mean loss), or (zeroth-order only) 1 - accuracy or 1 - macro F1 of the batch.
enum class TaskObjective { kCrossEntropy, kAccuracy, kF1 };

struct TaskLabel {
  std::string value;  // The label field's value, as text ("0", "true", "entailment").
  std::string text;   // Its label word(s).
};

struct TaskDefinition {
  std::string name;  // For messages: the preset or "task".
  TaskKind kind = TaskKind::kClassification;
  std::string prompt_template;     // {field} references and |filters (prompt_template.h).
  std::string candidate_template;  // Appended per candidate; {candidate} is the candidate.
  std::string label_field;
  std::vector<TaskLabel> labels;           // Classification.
  std::vector<std::string> choice_fields;  // Multiple choice.
  std::string target_field;                // Generation.
  CandidateScore score = CandidateScore::kSum;
  TaskObjective objective = TaskObjective::kCrossEntropy;
  std::string demonstration_separator = "\n\n";
  int max_new_tokens = 32;
  std::vector<std::string> stop = {"\n"};
};

}  // namespace strata::task

#endif  // STRATA_RUNTIME_TASK_TASK_DEFINITION_H_
