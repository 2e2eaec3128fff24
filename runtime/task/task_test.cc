// Task definitions by hand: template rendering and filters, example rendering (verbalizer,
// multiple choice, generation), candidate rows and their scored positions, the candidate
// objective's value and gradient weights computed by hand, metrics, and seeded sampling.
#include <cmath>

#include "gtest/gtest.h"
#include "runtime/data/tokenizer.h"
#include "runtime/task/candidate_objective.h"
#include "runtime/task/prompt_template.h"
#include "runtime/task/task_batch.h"
#include "runtime/task/task_examples.h"
#include "runtime/task/task_metrics.h"

namespace strata::task {
namespace {

using Json = nlohmann::json;

TEST(PromptTemplateTest, RendersFieldsPathsAndFilters) {
  const Json ex = Json::parse(
      R"({"sentence": "  a gripping film. ", "label": 1, "q": "cause", "answers": {"text": ["Paris", "paris"]},
          "choice": "The man fell."})");
  EXPECT_EQ(*RenderTemplate("{sentence|strip} It was", ex), "a gripping film. It was");
  EXPECT_EQ(*RenderTemplate("{answers.text}", ex), "Paris");
  EXPECT_EQ(*RenderTemplate("{answers.text|join}", ex), "Paris, paris");
  EXPECT_EQ(*RenderTemplate("{q|map(cause=because,effect=so)}", ex), "because");
  EXPECT_EQ(*RenderTemplate("{choice|lower_first|rstrip_punct}", ex), "the man fell");
  EXPECT_EQ(*RenderTemplate("{{literal}} {label}", ex), "{literal} 1");
  const std::string cand = "Lyon";
  EXPECT_EQ(*RenderTemplate(" {candidate|upper}", ex, &cand), " LYON");
  const Json rec = Json::parse(R"({"query": "@placeholder is a city"})");
  EXPECT_EQ(*RenderTemplate("{query|fill(@placeholder)}", rec, &cand), "Lyon is a city");

  // Errors name what is wrong.
  absl::StatusOr<std::string> missing = RenderTemplate("{premise} so", ex);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no field \"premise\""), std::string::npos);
  EXPECT_NE(RenderTemplate("{q|map(effect=so)}", ex).status().message().find("no entry for \"cause\""),
            std::string::npos);
  EXPECT_NE(RenderTemplate("{sentence|shout}", ex).status().message().find("unknown filter"),
            std::string::npos);
  EXPECT_FALSE(RenderTemplate("{sentence", ex).ok());
  EXPECT_FALSE(RenderTemplate("a } b", ex).ok());
  EXPECT_FALSE(RenderTemplate("{candidate}", ex).ok());  // Only in candidate templates.
}

TaskDefinition Sst2() {
  TaskDefinition t;
  t.name = "sst2";
  t.kind = TaskKind::kClassification;
  t.prompt_template = "{sentence} It was";
  t.candidate_template = " {candidate}";
  t.label_field = "label";
  t.labels = {{"0", "terrible"}, {"1", "great"}};
  return t;
}

TEST(TaskExamplesTest, VerbalizerClassification) {
  const Json ex = Json::parse(R"({"sentence": "fun", "label": 1})");
  absl::StatusOr<RenderedExample> r = RenderExample(Sst2(), ex, "train.jsonl", 7);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt, "fun It was");
  EXPECT_EQ(r->candidates, (std::vector<std::string>{" terrible", " great"}));
  EXPECT_EQ(r->label, 1);
  ByteTokenizer bytes;
  absl::StatusOr<TaskExample> t = TokenizeExample(Sst2(), *r, bytes);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->prompt, (std::vector<int32_t>{'f', 'u', 'n', ' ', 'I', 't', ' ', 'w', 'a', 's'}));
  ASSERT_EQ(t->candidates.size(), 2u);
  EXPECT_EQ(t->candidates[1], (std::vector<int32_t>{' ', 'g', 'r', 'e', 'a', 't'}));

  // A label the task does not know, named with its file and line.
  absl::StatusOr<RenderedExample> bad =
      RenderExample(Sst2(), Json::parse(R"({"sentence": "x", "label": 2})"), "train.jsonl", 9);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("train.jsonl:9"), std::string::npos);
  EXPECT_NE(bad.status().message().find("label \"2\""), std::string::npos);

  // A k-shot prompt: each demonstration with its right answer, then the separator.
  absl::StatusOr<RenderedExample> demo =
      RenderExample(Sst2(), Json::parse(R"({"sentence": "dull", "label": 0})"), "t", 1);
  ASSERT_TRUE(demo.ok());
  absl::StatusOr<TaskExample> shot = TokenizeExample(Sst2(), *r, bytes, {*demo});
  ASSERT_TRUE(shot.ok());
  const std::string text(shot->prompt.begin(), shot->prompt.end());
  EXPECT_EQ(text, "dull It was terrible\n\nfun It was");
}

TEST(TaskExamplesTest, MultipleChoiceAndGeneration) {
  TaskDefinition copa;
  copa.kind = TaskKind::kMultipleChoice;
  copa.prompt_template = "{premise|rstrip_punct} {question|map(cause=because,effect=so)}";
  copa.candidate_template = " {candidate|lower_first}";
  copa.label_field = "label";
  copa.choice_fields = {"choice1", "choice2"};
  absl::StatusOr<RenderedExample> r = RenderExample(
      copa,
      Json::parse(R"({"premise": "The man broke his toe.", "question": "cause",
                      "choice1": "He dropped a hammer.", "choice2": "He sang.", "label": 0})"),
      "copa", 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prompt, "The man broke his toe because");
  EXPECT_EQ(r->candidates[0], " he dropped a hammer.");
  EXPECT_EQ(r->label, 0);

  TaskDefinition squad;
  squad.kind = TaskKind::kGeneration;
  squad.prompt_template = "Question: {question}\nAnswer:";
  squad.candidate_template = " {candidate}";
  squad.target_field = "answers.text";
  absl::StatusOr<RenderedExample> g = RenderExample(
      squad, Json::parse(R"({"question": "Capital?", "answers": {"text": ["Paris", "Paris, France"]}})"),
      "squad", 1);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->candidates, (std::vector<std::string>{" Paris", " Paris, France"}));
  ByteTokenizer bytes;
  absl::StatusOr<TaskExample> t = TokenizeExample(squad, *g, bytes);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->candidates.size(), 1u);  // Trained on the first answer.
  EXPECT_EQ(t->answers.size(), 2u);     // Scored against all.
}

TEST(TaskBatchTest, CandidateRowsScoreOnlyTheCandidateAndPadToTheRight) {
  TaskExample a;
  a.prompt = {1, 2, 3};
  a.candidates = {{4}, {5, 6}};
  a.label = 1;
  TaskExample b;
  b.prompt = {7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  b.candidates = {{17}, {18}};
  const TaskExample* both[] = {&a, &b};
  TaskBatch batch;
  ASSERT_TRUE(BuildTaskBatch(Sst2(), both, /*max_length=*/8, &batch).ok());
  ASSERT_EQ(batch.rows, 4);
  ASSERT_EQ(batch.T, 8);
  auto row = [&](int r, const std::vector<int32_t>& v) {
    return std::vector<int32_t>(v.begin() + r * 8, v.begin() + r * 8 + 8);
  };
  // Row 1: prompt 1 2 3, candidate 5 6: positions 2 and 3 predict 5 and 6.
  EXPECT_EQ(row(1, batch.tokens), (std::vector<int32_t>{1, 2, 3, 5, 0, 0, 0, 0}));
  EXPECT_EQ(row(1, batch.targets), (std::vector<int32_t>{-1, -1, 5, 6, -1, -1, -1, -1}));
  // Row 2: 10 + 1 - 1 = 10 tokens > 8: the prompt loses its first two tokens.
  EXPECT_EQ(row(2, batch.tokens), (std::vector<int32_t>{9, 10, 11, 12, 13, 14, 15, 16}));
  EXPECT_EQ(row(2, batch.targets), (std::vector<int32_t>{-1, -1, -1, -1, -1, -1, -1, 17}));
  ASSERT_EQ(batch.objective.groups().size(), 2u);
  EXPECT_EQ(batch.objective.groups()[1].first_row, 2);
  EXPECT_EQ(batch.objective.groups()[0].label, 1);
}

TEST(CandidateObjectiveTest, CrossEntropyAndWeightsByHand) {
  // Two examples of two candidates; row sums of token losses and token counts.
  const std::vector<double> nll = {1.0, 2.0, 3.0, 0.5};
  const std::vector<int64_t> tokens = {1, 2, 1, 1};
  CandidateObjective sum({{0, 2, 0}, {2, 2, 0}}, CandidateScore::kSum, TaskObjective::kCrossEntropy);
  // Example 1: scores (-1, -2), label 0: -log(e^-1 / (e^-1 + e^-2)) = log(1 + e^-1).
  // Example 2: scores (-3, -0.5), label 0: log(1 + e^2.5).
  const double e1 = std::log1p(std::exp(-1.0)), e2 = std::log1p(std::exp(2.5));
  EXPECT_NEAR(sum.Loss(nll, tokens), (e1 + e2) / 2, 1e-6);
  std::vector<float> w(4);
  ASSERT_TRUE(sum.RowWeights(nll, tokens, absl::MakeSpan(w)).ok());
  const double p0 = 1 / (1 + std::exp(-1.0));  // p(right) of example 1.
  EXPECT_NEAR(w[0], (1 - p0) / 2, 1e-6);
  EXPECT_NEAR(w[1], -(1 - p0) / 2, 1e-6);
  EXPECT_EQ(sum.Predictions(nll, tokens), (std::vector<int>{0, 1}));
  EXPECT_NEAR(CandidateObjective({{0, 2, 0}, {2, 2, 0}}, CandidateScore::kSum,
                                 TaskObjective::kAccuracy)
                  .Loss(nll, tokens),
              0.5, 1e-7);
  // Mean scores: (-1, -1) for example 1: a tie, the first wins.
  CandidateObjective mean({{0, 2, 1}, {2, 2, 0}}, CandidateScore::kMean, TaskObjective::kCrossEntropy);
  EXPECT_EQ(mean.Predictions(nll, tokens)[0], 0);
  EXPECT_NEAR(mean.Loss(nll, tokens), (std::log(2.0) + e2) / 2, 1e-6);
  // No gradient for a non-differentiable objective.
  EXPECT_FALSE(CandidateObjective({{0, 2, 0}}, CandidateScore::kSum, TaskObjective::kF1)
                   .RowWeights(nll, tokens, absl::MakeSpan(w))
                   .ok());
}

TEST(TaskMetricsTest, ByHand) {
  EXPECT_DOUBLE_EQ(Accuracy({0, 1, 1, 0}, {0, 1, 0, 0}), 0.75);
  // Class 0: tp 2, fp 0, fn 1 -> 0.8; class 1: tp 1, fp 1, fn 0 -> 2/3.
  EXPECT_NEAR(MacroF1({0, 1, 1, 0}, {0, 1, 0, 0}, 2), (0.8 + 2.0 / 3) / 2, 1e-12);
  EXPECT_EQ(NormalizeAnswer("The  Eiffel Tower!"), "eiffel tower");
  EXPECT_EQ(ExactMatch("the Eiffel tower", {std::string("Eiffel Tower.")}), 1.0);
  // Prediction "eiffel tower paris" vs "eiffel tower": precision 2/3, recall 1 -> 0.8.
  EXPECT_NEAR(TokenF1("Eiffel Tower, Paris", {std::string("x"), std::string("The Eiffel Tower")}),
              0.8, 1e-12);
}

TEST(TaskExamplesTest, SeededSamplingIsDisjointAndDeterministic) {
  const std::vector<int64_t> train = SampleIndices(100, 30, 7);
  const std::vector<int64_t> dev = SampleIndices(100, 20, 7, 30);
  EXPECT_EQ(train, SampleIndices(100, 30, 7));
  EXPECT_NE(train, SampleIndices(100, 30, 8));
  for (int64_t i : dev) EXPECT_EQ(std::count(train.begin(), train.end(), i), 0);
  EXPECT_EQ(SampleIndices(10, 0, 1).size(), 10u);
}

TEST(TaskBatcherTest, SameSeedSameBatchesAndResumable) {
  std::vector<TaskExample> examples(10);
  for (int i = 0; i < 10; ++i) {
    examples[i].prompt = {i + 1};
    examples[i].candidates = {{1}, {2}};
  }
  const TaskDefinition task = Sst2();
  auto make = [&] { return *TaskBatcher::Create(&task, &examples, {3, 8, 5, 0, 1}); };
  TaskBatcher a = make(), b = make();
  TaskBatch x, y;
  std::vector<std::vector<int32_t>> seen;
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(a.Next(&x).ok());
    seen.push_back(x.tokens);
  }
  b.set_position(SamplerPosition{1, 1});  // Epoch 1 (3 batches each), second batch: step 5.
  ASSERT_TRUE(b.Next(&y).ok());
  EXPECT_EQ(y.tokens, seen[4]);
  EXPECT_FALSE(TaskBatcher::Create(&task, &examples, {11, 8, 5, 0, 1}).ok());
}

}  // namespace
}  // namespace strata::task
