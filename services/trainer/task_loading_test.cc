// TokenizeTaskExamples, as a federated client loads its own examples: every line in file order,
// rendered with the job's definition (TaskDefinitionFromSpec) and tokenized, with errors naming
// the file and line — a missing field, a label the task does not have, a token outside the
// model's vocabulary.
#include "services/trainer/task_loading.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/task/task_examples.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

v1::TaskSpec Sentiment() {
  v1::TaskSpec spec;
  spec.set_kind(v1::TASK_KIND_CLASSIFICATION);
  spec.set_template_("{sentence} Verdict:");
  spec.set_candidate_template(" {candidate}.");
  spec.set_label_field("label");
  for (const auto& [value, text] : {std::pair{"0", "terrible"}, {"1", "great"}}) {
    v1::TaskLabel* label = spec.add_labels();
    label->set_value(value);
    label->set_text(text);
  }
  return spec;
}

std::string Write(const std::string& name, const std::string& text) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(TaskLoadingTest, AClientsExamplesAreAllTakenInFileOrder) {
  const std::string path = Write("client.jsonl",
                                 "{\"sentence\": \"the film was good.\", \"label\": 1}\n"
                                 "\n"
                                 "{\"sentence\": \"the meal was bad.\", \"label\": 0}\n"
                                 "{\"sentence\": \"our trip was warm.\", \"label\": 1}\n");
  const task::TaskDefinition definition = TaskDefinitionFromSpec(Sentiment());
  absl::StatusOr<std::vector<nlohmann::json>> lines = task::ReadJsonl(path, kMaxTaskExamples);
  ASSERT_TRUE(lines.ok()) << lines.status();
  ByteTokenizer bytes;
  ModelConfig model;
  model.vocab_size = bytes.vocab_size();
  absl::StatusOr<std::vector<task::TaskExample>> examples =
      TokenizeTaskExamples(definition, *lines, path, bytes, model);
  ASSERT_TRUE(examples.ok()) << examples.status();
  ASSERT_EQ(examples->size(), 3u);
  const std::vector<int> labels = {(*examples)[0].label, (*examples)[1].label,
                                   (*examples)[2].label};
  EXPECT_EQ(labels, (std::vector<int>{1, 0, 1}));
  absl::StatusOr<std::vector<int32_t>> prompt = bytes.Encode("the meal was bad. Verdict:");
  ASSERT_TRUE(prompt.ok());
  EXPECT_EQ((*examples)[1].prompt, *prompt);
  ASSERT_EQ((*examples)[1].candidates.size(), 2u);
  absl::StatusOr<std::vector<int32_t>> great = bytes.Encode(" great.");
  ASSERT_TRUE(great.ok());
  EXPECT_EQ((*examples)[1].candidates[1], *great);
}

TEST(TaskLoadingTest, ErrorsNameTheFileAndLine) {
  const task::TaskDefinition definition = TaskDefinitionFromSpec(Sentiment());
  ByteTokenizer bytes;
  ModelConfig model;
  model.vocab_size = bytes.vocab_size();
  auto load = [&](const std::string& name, const std::string& text) {
    const std::string path = Write(name, text);
    absl::StatusOr<std::vector<nlohmann::json>> lines = task::ReadJsonl(path, kMaxTaskExamples);
    EXPECT_TRUE(lines.ok()) << lines.status();
    return TokenizeTaskExamples(definition, *lines, path, bytes, model).status();
  };
  const std::string good = "{\"sentence\": \"good.\", \"label\": 1}\n";
  EXPECT_THAT(load("missing.jsonl", good + "{\"text\": \"bad.\", \"label\": 0}\n").message(),
              HasSubstr("missing.jsonl:2"));
  EXPECT_THAT(
      load("label.jsonl", good + good + "{\"sentence\": \"so so.\", \"label\": 2}\n").message(),
      HasSubstr("label.jsonl:3"));
  model.vocab_size = 100;  // Smaller than the bytes of the text: the tokenizer does not fit.
  const absl::Status vocab = load("vocab.jsonl", good);
  EXPECT_THAT(vocab.message(), HasSubstr("vocab.jsonl:1"));
  EXPECT_THAT(vocab.message(), HasSubstr("outside the model's vocabulary"));
}

}  // namespace
}  // namespace strata
