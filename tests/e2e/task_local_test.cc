// Tasks with strata-train on one machine, on the synthetic sentiment language
// (deploy/examples/synthetic_sentiment.py): a model pretrained first-order, then
// - a zeroth-order run that optimizes held-out-style accuracy directly (task.objective
//   TASK_OBJECTIVE_ACCURACY, MeZO's non-differentiable setting) from a briefly fine-tuned start:
//   dev accuracy rises by at least 0.1 (measured 0.55 -> 0.70 in 300 steps);
// - a generation task (the verdict and its full stop as the answer, trained on those tokens
//   only; decoding stops at the full stop, as MeZO's answers end in a newline): after a short
//   first-order run the job's own evaluation decodes greedily and reports exact match and token
//   F1 of at least 0.9, and `strata-train generate` continues a review with the verdict.
#include <sys/stat.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace strata {
namespace {

using ::strata::testing::Absolute;
using ::strata::testing::ProcessResult;
using ::strata::testing::RunProcess;
using ::strata::testing::TestTmpDir;
using ::testing::HasSubstr;

constexpr char kTrain[] = "services/trainer/strata-train";
constexpr char kGenerator[] = "deploy/examples/synthetic_sentiment.py";

ProcessResult Train(std::vector<std::string> args) {
  args.insert(args.begin(), kTrain);
  args.push_back("--threads=1");
  absl::StatusOr<ProcessResult> r = RunProcess(args, ".", absl::Minutes(5));
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return ProcessResult();
  EXPECT_EQ(r->exit_code, 0) << r->err << r->out;
  return *r;
}

// The value after the last "| <name> " in a log.
double LastMetric(const std::string& log, const std::string& name) {
  const size_t at = log.rfind("| " + name + " ");
  double value = -1;
  if (at == std::string::npos) return value;
  const size_t begin = at + name.size() + 3;
  EXPECT_TRUE(absl::SimpleAtod(log.substr(begin, log.find_first_of(" \n", begin) - begin), &value));
  return value;
}

// The value after the first "| <name> " of the first line holding `marker`.
double MetricAfter(const std::string& log, const std::string& marker, const std::string& name) {
  const size_t line = log.find(marker);
  if (line == std::string::npos) return -1;
  return LastMetric(log.substr(line, log.find('\n', line) - line), name);
}

TEST(TaskLocalTest, AccuracyObjectiveAndGenerationTask) {
  const std::string dir = Absolute(TestTmpDir()) + "/local";
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  const std::string data = dir + "/data";
  absl::StatusOr<ProcessResult> made = RunProcess({"/usr/bin/python3", kGenerator, data}, ".");
  ASSERT_TRUE(made.ok() && made->exit_code == 0);
  std::ofstream(dir + "/model.json") << R"({"model_type": "gpt2", "vocab_size": 538, "n_embd": 128, "n_layer": 2, "n_head": 4, "n_positions": 64})";
  const std::string tokenizer = "--tokenizer=" + data + "/tokenizer.json";
  Train({"--model_config=" + dir + "/model.json", tokenizer, "--data=" + data + "/corpus.txt",
         "--steps=300", "--batch=16", "--seq=32", "--lr=3e-3", "--eval_every=300",
         "--log_every=300", "--save_dir=" + dir + "/pre"});
  const std::vector<std::string> zo = {"--optimizer=zo", "--batch=16", "--seq=24",
                                       "--schedule=constant", "--warmup=0", "--weight_decay=0",
                                       tokenizer, "--task=" + data + "/sentiment.yaml"};
  // A brief cross-entropy start, so predictions differ between examples (accuracy is flat
  // while every example gets the same answer).
  std::vector<std::string> start = zo;
  start.insert(start.end(), {"--init_from=" + dir + "/pre", "--steps=40", "--lr=1e-4",
                             "--eps=1e-3", "--eval_every=40", "--save_dir=" + dir + "/start"});
  const double before = LastMetric(Train(start).out, "accuracy");
  std::vector<std::string> accuracy = zo;
  accuracy.insert(accuracy.end(),
                  {"--init_from=" + dir + "/start", "--steps=300", "--batch=32", "--lr=3e-3",
                   "--eps=3e-2", "--eval_every=100",
                   "--task_config=objective=TASK_OBJECTIVE_ACCURACY"});
  const std::string log = Train(accuracy).out;
  const double after = LastMetric(log, "accuracy");
  std::printf("accuracy objective: dev accuracy %.4f -> %.4f\n", before, after);
  EXPECT_GT(before, 0);
  EXPECT_GE(after, before + 0.1) << log;

  // Generation: the verdict is the answer.
  std::ofstream(dir + "/verdict.yaml") << "kind: TASK_KIND_GENERATION\ntrain_path: " << data
                                       << "/train.jsonl\ndev_path: " << data
                                       << "/dev.jsonl\ntemplate: '{sentence} Verdict:'\n"
                                          "target_field: verdict\ncandidate_template: ' {candidate}.'\n"
                                          "stop: ['.']\n"
                                          "max_new_tokens: 3\n";
  const std::string generation = Train({"--init_from=" + dir + "/pre", tokenizer,
                                        "--task=" + dir + "/verdict.yaml", "--steps=60",
                                        "--batch=16", "--seq=24", "--lr=1e-3",
                                        "--schedule=constant", "--warmup=0", "--eval_every=60",
                                        "--save_dir=" + dir + "/gen"}).out;
  EXPECT_GE(MetricAfter(generation, "final eval loss", "exact_match"), 0.9) << generation;
  EXPECT_GE(MetricAfter(generation, "final eval loss", "token_f1"), 0.9) << generation;
  const ProcessResult text =
      Train({"generate", "--init_from=" + dir + "/gen", tokenizer,
             "--prompt=the film was lovely and warm. Verdict:", "--max_new_tokens=2"});
  EXPECT_THAT(text.out, HasSubstr("great"));
}

}  // namespace
}  // namespace strata
