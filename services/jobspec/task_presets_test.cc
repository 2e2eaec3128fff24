// The task presets against MeZO's reference wording (Malladi et al. 2023, princeton-nlp/MeZO
// large_models/templates.py, with the template class tasks.py picks for each task): every preset
// normalizes in a zeroth-order job, and one hand-written example in its dataset's usual Hugging
// Face JSONL shape, rendered through the normalized preset, gives exactly the prompt and
// candidates MeZO builds — its encode(sample) as the prompt and verbalize(sample, candidate)
// minus that prompt as each candidate (both with spaces stripped at the ends, as
// utils.encode_prompt does), and for generation tasks verbalize(sample, answers[0]) minus the
// prompt as the trained answer. The expected strings are written by hand from those classes.
// A field the user sets wins over the preset's.
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/strata/v1/job.pb.h"
#include "runtime/task/task_definition.h"
#include "runtime/task/task_examples.h"
#include "services/jobspec/task_presets.h"
#include "services/jobspec/task_spec.h"
#include "services/trainer/task_loading.h"

namespace strata {
namespace {

using Json = nlohmann::json;

// A zeroth-order job whose task is `task`, normalized.
absl::StatusOr<v1::TaskSpec> Normalized(const v1::TaskSpec& task) {
  v1::JobSpec spec;
  spec.mutable_training()->set_seed(7);
  spec.mutable_optimizer()->mutable_zeroth_order();
  *spec.mutable_task() = task;
  if (absl::Status s = NormalizeTask(spec); !s.ok()) return s;
  return spec.task();
}

v1::TaskSpec Preset(const std::string& name) {
  v1::TaskSpec task;
  task.set_preset(name);
  task.set_train_path("/data/" + name + "/train.jsonl");
  return task;
}

absl::StatusOr<task::RenderedExample> Render(const v1::TaskSpec& task, const std::string& line) {
  absl::StatusOr<v1::TaskSpec> normalized = Normalized(task);
  if (!normalized.ok()) return normalized.status();
  return task::RenderExample(TaskDefinitionFromSpec(*normalized), Json::parse(line),
                             "train.jsonl", 1);
}

TEST(TaskPresetsTest, TheElevenTasksMezoReports) {
  EXPECT_EQ(TaskPresetNames(),
            (std::vector<std::string>{"boolq", "cb", "copa", "drop", "multirc", "record", "rte",
                                      "squad", "sst2", "wic", "wsc"}));
  EXPECT_EQ(FindTaskPreset("sst-2"), nullptr);
  absl::StatusOr<v1::TaskSpec> unknown = Normalized(Preset("sst-2"));
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("spec.task.preset: \"sst-2\" is not one of boolq, cb"),
            std::string::npos)
      << unknown.status();
}

// Every preset normalizes with only a train_path, to MeZO's sample sizes (1000 train, 500 dev
// — 100 for CB and COPA, whose train splits are small — 1000 test), and normalizing again
// changes nothing.
TEST(TaskPresetsTest, EveryPresetNormalizes) {
  for (const std::string& name : TaskPresetNames()) {
    SCOPED_TRACE(name);
    absl::StatusOr<v1::TaskSpec> task = Normalized(Preset(name));
    ASSERT_TRUE(task.ok()) << task.status();
    EXPECT_EQ(task->preset(), name);
    EXPECT_EQ(task->train_path(), "/data/" + name + "/train.jsonl");
    EXPECT_NE(task->kind(), v1::TASK_KIND_UNSPECIFIED);
    EXPECT_FALSE(task->template_().empty());
    EXPECT_FALSE(task->candidate_template().empty());
    EXPECT_EQ(task->num_train(), 1000);
    EXPECT_EQ(task->num_dev(), name == "cb" || name == "copa" ? 100 : 500);
    EXPECT_EQ(task->num_test(), 1000);
    EXPECT_EQ(task->sampling_seed(), 7u);  // training.seed
    EXPECT_EQ(task->objective(), v1::TASK_OBJECTIVE_CROSS_ENTROPY);
    EXPECT_EQ(task->demonstration_separator(), "\n\n");  // MeZO's train_sep
    ASSERT_EQ(task->stop_size(), 1);
    EXPECT_EQ(task->stop(0), "\n");  // MeZO's eos_token
    const bool generation = task->kind() == v1::TASK_KIND_GENERATION;
    EXPECT_EQ(generation, name == "squad" || name == "drop");
    EXPECT_EQ(task->max_new_tokens(), generation ? 50 : 32);  // MeZO's max_new_tokens: 50
    EXPECT_EQ(task->label_field().empty(), generation);
    absl::StatusOr<v1::TaskSpec> again = Normalized(*task);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->SerializeAsString(), task->SerializeAsString());
  }
}

struct MezoCase {
  std::string preset;
  std::string mezo;  // The template class MeZO renders the task with, for messages.
  std::string line;  // One example, as the dataset's JSONL export writes it.
  std::string prompt;
  // Classification: each class's candidate in the preset's class order (label values 0, 1,
  // ...); multiple choice: each choice's; generation: the trained answer (answers[0]).
  std::vector<std::string> candidates;
  int label = 0;
};

// gtest prints a failing case's parameter with this (instead of its bytes).
void PrintTo(const MezoCase& c, std::ostream* os) { *os << c.preset << " (" << c.mezo << ")"; }

std::string CaseName(const ::testing::TestParamInfo<MezoCase>& info) {
  std::string name = info.param.preset;
  if (info.param.mezo.find("first word I") != std::string::npos) name += "_first_word_I";
  return name;
}

class MezoWordingTest : public ::testing::TestWithParam<MezoCase> {};

TEST_P(MezoWordingTest, RendersAsMezoTemplates) {
  const MezoCase& c = GetParam();
  absl::StatusOr<task::RenderedExample> r = Render(Preset(c.preset), c.line);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt, c.prompt) << "prompt differs from MeZO's " << c.mezo;
  if (c.preset == "squad" || c.preset == "drop") {
    ASSERT_FALSE(r->candidates.empty());
    EXPECT_EQ(r->candidates.front(), c.candidates.front())
        << "trained answer differs from MeZO's " << c.mezo;
  } else {
    EXPECT_EQ(r->candidates, c.candidates) << "candidates differ from MeZO's " << c.mezo;
  }
  EXPECT_EQ(r->label, c.label);
}

INSTANTIATE_TEST_SUITE_P(
    Presets, MezoWordingTest,
    ::testing::Values(
        // glue/sst2. SST2Template: f"{sentence.strip()} It was", verbalizer 0 terrible, 1 great.
        MezoCase{"sst2", "SST2Template",
                 R"json({"sentence": "hide new secretions from the parental units ", "label": 0, "idx": 0})json",
                 "hide new secretions from the parental units It was",
                 {" terrible", " great"},
                 0},
        // super_glue/rte. RTETemplate, verbalizer 0 Yes (entailment), 1 No.
        MezoCase{"rte", "RTETemplate",
                 R"json({"premise": "No Weapons of Mass Destruction Found in Iraq Yet.", "hypothesis": "Weapons of Mass Destruction Found in Iraq.", "idx": 0, "label": 1})json",
                 "No Weapons of Mass Destruction Found in Iraq Yet.\nDoes this mean that "
                 "\"Weapons of Mass Destruction Found in Iraq.\" is true? Yes or No?\n",
                 {"Yes", "No"},
                 1},
        // super_glue/cb. CBTemplate, verbalizer 0 Yes, 1 No, 2 Maybe.
        MezoCase{"cb", "CBTemplate",
                 R"json({"premise": "It was a complex language. Not written down but handed down. One might say it was peeled down.", "hypothesis": "the language was peeled down", "idx": 0, "label": 0})json",
                 "Suppose It was a complex language. Not written down but handed down. One might "
                 "say it was peeled down. Can we infer that \"the language was peeled down\"? "
                 "Yes, No, or Maybe?\n",
                 {"Yes", "No", "Maybe"},
                 0},
        // super_glue/boolq (label 1 = true). BoolQDataset.get_template() defaults to version 2,
        // BoolQTemplateV3: f"{passage} {question}\n" with "?" added when missing and the first
        // letter capitalized, then the candidate "Yes" / "No" right after the newline.
        MezoCase{"boolq", "BoolQTemplateV3",
                 R"json({"question": "do iran and afghanistan speak the same language", "passage": "Persian language -- Persian, also known by its endonym Farsi, is one of the Western Iranian languages.", "idx": 0, "label": 1})json",
                 "Persian language -- Persian, also known by its endonym Farsi, is one of the "
                 "Western Iranian languages. Do iran and afghanistan speak the same language?\n",
                 {"No", "Yes"},
                 1},
        // super_glue/wsc.fixed. WSCTemplate (span2 lowercased), verbalizer 0 No, 1 Yes.
        MezoCase{"wsc", "WSCTemplate",
                 R"json({"text": "Mark told Pete many lies about himself, which Pete included in his book. He should have been more truthful.", "span1_index": 0, "span2_index": 13, "span1_text": "Mark", "span2_text": "He", "idx": 0, "label": 0})json",
                 "Mark told Pete many lies about himself, which Pete included in his book. He "
                 "should have been more truthful.\nIn the previous sentence, does the pronoun "
                 "\"he\" refer to Mark? Yes or No?\n",
                 {"No", "Yes"},
                 0},
        // super_glue/wic. WICTemplate, verbalizer 0 No, 1 Yes.
        MezoCase{"wic", "WICTemplate",
                 R"json({"word": "place", "sentence1": "Do you want to come over to my place later?", "sentence2": "A political system with no place for the less prominent groups.", "start1": 31, "start2": 27, "end1": 36, "end2": 32, "idx": 0, "label": 0})json",
                 "Does the word \"place\" have the same meaning in these two sentences? Yes, No?\n"
                 "Do you want to come over to my place later?\nA political system with no place "
                 "for the less prominent groups.\n",
                 {"No", "Yes"},
                 0},
        // super_glue/multirc. MultiRCTemplate, verbalizer 0 No, 1 Yes.
        MezoCase{"multirc", "MultiRCTemplate",
                 R"json({"paragraph": "While this process moved along, diplomacy continued its rounds. Direct pressure on the Taliban had proved unsuccessful.", "question": "What did the high-level effort to persuade Pakistan include?", "answer": "Children, Gerd, or Dorian Popa", "idx": {"paragraph": 0, "question": 0, "answer": 0}, "label": 0})json",
                 "While this process moved along, diplomacy continued its rounds. Direct pressure "
                 "on the Taliban had proved unsuccessful.\nQuestion: What did the high-level "
                 "effort to persuade Pakistan include?\nI found this answer \"Children, Gerd, or "
                 "Dorian Popa\". Is that correct? Yes or No?\n",
                 {"No", "Yes"},
                 0},
        // super_glue/copa. CopaTemplate: the premise without its final ".", " because " or
        // " so ", then each choice with its first word lowercased unless that word is "I".
        MezoCase{"copa", "CopaTemplate",
                 R"json({"premise": "My body cast a shadow over the grass.", "choice1": "The sun was rising.", "choice2": "The grass was cut.", "question": "cause", "idx": 0, "label": 0})json",
                 "My body cast a shadow over the grass because",
                 {" the sun was rising.", " the grass was cut."},
                 0},
        MezoCase{"copa", "CopaTemplate (choices whose first word I stays capitalized)",
                 R"json({"premise": "I was preparing to clean the bathroom.", "choice1": "I put on rubber gloves.", "choice2": "I wiped my feet on the doormat.", "question": "effect", "idx": 1, "label": 0})json",
                 "I was preparing to clean the bathroom so",
                 {" I put on rubber gloves.", " I wiped my feet on the doormat."},
                 0},
        // super_glue/record. ReCoRDDataset uses ReCoRDTemplateGPT3: the passage with each
        // "@highlight\n" replaced by "- ", then "\n-"; each candidate is " " + the query with
        // @placeholder replaced by the entity. The right candidate: answers[0].
        MezoCase{"record", "ReCoRDTemplateGPT3",
                 R"json({"passage": "The harrowing stories of women and children locked up in Afghanistan's notorious female prison have been revealed.\n@highlight\nThe BBC obtained access to Badam Bagh prison\n@highlight\nThe women are locked up for 'moral crimes'", "query": "Many of the women in @placeholder are there for running away from home", "entities": ["Afghanistan", "BBC", "Badam Bagh"], "entity_spans": {"text": ["Afghanistan", "BBC", "Badam Bagh"], "start": [0, 0, 0], "end": [0, 0, 0]}, "answers": ["Badam Bagh"], "idx": {"passage": 0, "query": 0}})json",
                 "The harrowing stories of women and children locked up in Afghanistan's "
                 "notorious female prison have been revealed.\n- The BBC obtained access to Badam "
                 "Bagh prison\n- The women are locked up for 'moral crimes'\n-",
                 {" Many of the women in Afghanistan are there for running away from home",
                  " Many of the women in BBC are there for running away from home",
                  " Many of the women in Badam Bagh are there for running away from home"},
                 2},
        // squad. SQuADDataset uses SQuADv2Template: the question stripped; the trained text is
        // verbalize(answers), " " + answers[0] + "\n" after the prompt.
        MezoCase{"squad", "SQuADv2Template",
                 R"json({"id": "5733be284776f41900661182", "title": "University_of_Notre_Dame", "context": "Architecturally, the school has a Catholic character. Atop the Main Building's gold dome is a golden statue of the Virgin Mary.", "question": "To whom did the Virgin Mary allegedly appear in 1858 in Lourdes France?", "answers": {"text": ["Saint Bernadette Soubirous"], "answer_start": [515]}})json",
                 "Title: University_of_Notre_Dame\nContext: Architecturally, the school has a "
                 "Catholic character. Atop the Main Building's gold dome is a golden statue of the "
                 "Virgin Mary.\nQuestion: To whom did the Virgin Mary allegedly appear in 1858 in "
                 "Lourdes France?\nAnswer:",
                 {" Saint Bernadette Soubirous\n"},
                 0},
        // drop. DROPTemplate over DROPDataset's {context: passage, question, answers:
        // answers_spans.spans}; the trained text " " + answers[0] + "\n".
        MezoCase{"drop", "DROPTemplate",
                 R"json({"section_id": "nfl_2201", "query_id": "f16c0ee7-f131-4a8b-a6ac-4d275ea68066", "passage": "To start the season, the Lions traveled south to Tampa, Florida to take on the Tampa Bay Buccaneers.", "question": "How many points did the buccaneers need to tie in the first?", "answers_spans": {"spans": ["3"], "types": ["number"]}})json",
                 "Passage: To start the season, the Lions traveled south to Tampa, Florida to take "
                 "on the Tampa Bay Buccaneers.\nQuestion: How many points did the buccaneers need "
                 "to tie in the first?\nAnswer:",
                 {" 3\n"},
                 0}),
    CaseName);

// A field the user sets wins over the preset's; repeated fields (labels) are replaced whole;
// what the user leaves unset stays the preset's.
TEST(TaskPresetsTest, UserFieldsWin) {
  v1::TaskSpec task = Preset("sst2");
  v1::TaskLabel* negative = task.add_labels();
  negative->set_value("0");
  negative->set_text("bad");
  v1::TaskLabel* positive = task.add_labels();
  positive->set_value("1");
  positive->set_text("good");
  task.set_num_train(64);
  task.set_sampling_seed(3);
  absl::StatusOr<v1::TaskSpec> normalized = Normalized(task);
  ASSERT_TRUE(normalized.ok()) << normalized.status();
  ASSERT_EQ(normalized->labels_size(), 2);  // The user's two, none of the preset's.
  EXPECT_EQ(normalized->labels(0).text(), "bad");
  EXPECT_EQ(normalized->labels(1).text(), "good");
  EXPECT_EQ(normalized->num_train(), 64);
  EXPECT_EQ(normalized->sampling_seed(), 3u);
  EXPECT_EQ(normalized->num_dev(), 500);                    // The preset's.
  EXPECT_EQ(normalized->template_(), "{sentence|strip} It was");  // The preset's.
  absl::StatusOr<task::RenderedExample> r =
      Render(task, R"json({"sentence": "a gripping film ", "label": 1})json");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt, "a gripping film It was");
  EXPECT_EQ(r->candidates, (std::vector<std::string>{" bad", " good"}));
  EXPECT_EQ(r->label, 1);

  // A label word the user gives that names no class of the file is the file's error.
  absl::StatusOr<task::RenderedExample> bad =
      Render(task, R"json({"sentence": "a film", "label": 2})json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("label \"2\" (label) is not one of the task's labels"),
            std::string::npos)
      << bad.status();
}

// The boolq preset over MeZO's own copy of the data (Hugging Face "boolq": a boolean `answer`,
// no `label`), with the user's fields giving BoolQTemplateV3's wording.
TEST(TaskPresetsTest, UserFieldsReadAnotherExportOfTheDataset) {
  v1::TaskSpec task = Preset("boolq");
  task.set_label_field("answer");
  v1::TaskLabel* no = task.add_labels();
  no->set_value("false");
  no->set_text("No");
  v1::TaskLabel* yes = task.add_labels();
  yes->set_value("true");
  yes->set_text("Yes");
  task.set_template_("{passage} {question|upper_first}?\n");
  task.set_candidate_template("{candidate}");
  absl::StatusOr<task::RenderedExample> r = Render(
      task,
      R"json({"question": "is confectionary sugar the same as powdered sugar", "answer": true, "passage": "Powdered sugar, also called confectioners' sugar, is a finely ground sugar."})json");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt,
            "Powdered sugar, also called confectioners' sugar, is a finely ground sugar. Is "
            "confectionary sugar the same as powdered sugar?\n");
  EXPECT_EQ(r->candidates, (std::vector<std::string>{"No", "Yes"}));
  EXPECT_EQ(r->label, 1);
}

// A generation preset with the user's answer template: what MeZO's SQuADv2Template trains on
// (the answer and its newline).
TEST(TaskPresetsTest, UserCandidateTemplateOnAGenerationPreset) {
  v1::TaskSpec task = Preset("squad");
  task.set_template_("Title: {title}\nContext: {context}\nQuestion: {question|strip}\nAnswer:");
  task.set_candidate_template(" {candidate}\n");
  absl::StatusOr<task::RenderedExample> r = Render(
      task,
      R"json({"title": "Normans", "context": "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy.", "question": "In what country is Normandy located? ", "answers": {"text": ["France", "France"], "answer_start": [159, 159]}})json");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt,
            "Title: Normans\nContext: The Normans were the people who in the 10th and 11th "
            "centuries gave their name to Normandy.\nQuestion: In what country is Normandy "
            "located?\nAnswer:");
  EXPECT_EQ(r->candidates, (std::vector<std::string>{" France\n", " France\n"}));
  EXPECT_EQ(r->label, 0);
}

}  // namespace
}  // namespace strata
