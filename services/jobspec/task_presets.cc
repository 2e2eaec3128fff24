// See task_presets.h.
#include "services/jobspec/task_presets.h"

#include <map>

#include "google/protobuf/text_format.h"

namespace strata {
namespace {

// Text-format TaskSpecs. Templates keep MeZO's wording (the template class its tasks.py picks);
// where MeZO slices a string in Python the equivalent filter is used (COPA's premise[:-1] is
// drop_last, its first-word lowercasing lower_first_word; BoolQ's capitalized question with a
// "?" added when missing is upper_first|end_with(?)). Candidates are scored by their mean
// log-probability, as MeZO scores and trains them.
const std::map<std::string, std::string>& PresetTexts() {
  static const auto* presets = new std::map<std::string, std::string>{
      {"sst2", R"pb(
        kind: TASK_KIND_CLASSIFICATION
        score: CANDIDATE_SCORE_MEAN
        template: "{sentence|strip} It was"
        candidate_template: " {candidate}"
        labels { value: "0" text: "terrible" }
        labels { value: "1" text: "great" }
        num_train: 1000 num_dev: 500 num_test: 1000)pb"},
      {"rte", R"pb(
        kind: TASK_KIND_CLASSIFICATION
        score: CANDIDATE_SCORE_MEAN
        template: "{premise}\nDoes this mean that \"{hypothesis}\" is true? Yes or No?\n"
        candidate_template: "{candidate}"
        labels { value: "0" text: "Yes" }
        labels { value: "1" text: "No" }
        num_train: 1000 num_dev: 500 num_test: 1000)pb"},
      {"cb", R"pb(
        kind: TASK_KIND_CLASSIFICATION
        score: CANDIDATE_SCORE_MEAN
        template: "Suppose {premise} Can we infer that \"{hypothesis}\"? Yes, No, or Maybe?\n"
        candidate_template: "{candidate}"
        labels { value: "0" text: "Yes" }
        labels { value: "1" text: "No" }
        labels { value: "2" text: "Maybe" }
        num_train: 1000 num_dev: 100 num_test: 1000)pb"},
      {"boolq", R"pb(
        kind: TASK_KIND_CLASSIFICATION
        score: CANDIDATE_SCORE_MEAN
        template: "{passage} {question|upper_first|end_with(?)}\n"
        candidate_template: "{candidate}"
        labels { value: "0" text: "No" }
        labels { value: "1" text: "Yes" }
        num_train: 1000 num_dev: 500 num_test: 1000)pb"},
      {"wsc", R"pb(
        kind: TASK_KIND_CLASSIFICATION
        score: CANDIDATE_SCORE_MEAN
        template: "{text}\nIn the previous sentence, does the pronoun \"{span2_text|lower}\" refer to {span1_text}? Yes or No?\n"
        candidate_template: "{candidate}"
        labels { value: "0" text: "No" }
        labels { value: "1" text: "Yes" }
        num_train: 1000 num_dev: 500 num_test: 1000)pb"},
      {"wic", R"pb(
        kind: TASK_KIND_CLASSIFICATION
        score: CANDIDATE_SCORE_MEAN
        template: "Does the word \"{word}\" have the same meaning in these two sentences? Yes, No?\n{sentence1}\n{sentence2}\n"
        candidate_template: "{candidate}"
        labels { value: "0" text: "No" }
        labels { value: "1" text: "Yes" }
        num_train: 1000 num_dev: 500 num_test: 1000)pb"},
      {"multirc", R"pb(
        kind: TASK_KIND_CLASSIFICATION
        score: CANDIDATE_SCORE_MEAN
        template: "{paragraph}\nQuestion: {question}\nI found this answer \"{answer}\". Is that correct? Yes or No?\n"
        candidate_template: "{candidate}"
        labels { value: "0" text: "No" }
        labels { value: "1" text: "Yes" }
        num_train: 1000 num_dev: 500 num_test: 1000)pb"},
      {"copa", R"pb(
        kind: TASK_KIND_MULTIPLE_CHOICE
        score: CANDIDATE_SCORE_MEAN
        template: "{premise|drop_last} {question|map(cause=because,effect=so)}"
        candidate_template: " {candidate|lower_first_word}"
        choice_fields: "choice1"
        choice_fields: "choice2"
        num_train: 1000 num_dev: 100 num_test: 1000)pb"},
      {"record", R"pb(
        kind: TASK_KIND_MULTIPLE_CHOICE
        score: CANDIDATE_SCORE_MEAN
        template: "{passage|replace(@highlight\n,- )}\n-"
        candidate_template: " {query|fill(@placeholder)}"
        choice_fields: "entities"
        label_field: "answers"
        num_train: 1000 num_dev: 500 num_test: 1000)pb"},
      {"squad", R"pb(
        kind: TASK_KIND_GENERATION
        template: "Title: {title}\nContext: {context}\nQuestion: {question|strip}\nAnswer:"
        candidate_template: " {candidate}\n"
        target_field: "answers.text"
        num_train: 1000 num_dev: 500 num_test: 1000 max_new_tokens: 50)pb"},
      {"drop", R"pb(
        kind: TASK_KIND_GENERATION
        template: "Passage: {passage}\nQuestion: {question|strip}\nAnswer:"
        candidate_template: " {candidate}\n"
        target_field: "answers_spans.spans"
        num_train: 1000 num_dev: 500 num_test: 1000 max_new_tokens: 50)pb"},
  };
  return *presets;
}

}  // namespace

const v1::TaskSpec* FindTaskPreset(const std::string& name) {
  static const auto* parsed = [] {
    auto* out = new std::map<std::string, v1::TaskSpec>;
    for (const auto& [preset, text] : PresetTexts()) {
      v1::TaskSpec spec;
      if (!google::protobuf::TextFormat::ParseFromString(text, &spec)) std::abort();
      spec.set_preset(preset);
      (*out)[preset] = spec;
    }
    return out;
  }();
  auto it = parsed->find(name);
  return it == parsed->end() ? nullptr : &it->second;
}

std::vector<std::string> TaskPresetNames() {
  std::vector<std::string> names;
  for (const auto& [name, text] : PresetTexts()) names.push_back(name);
  return names;
}

}  // namespace strata
