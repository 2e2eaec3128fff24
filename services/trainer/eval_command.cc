// See eval_command.h.
#include "services/trainer/eval_command.h"

#include <sys/stat.h>

#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status_macros.h"
#include "runtime/data/tokenizer.h"
#include "runtime/generate/generator.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/peft/peft_checkpoint.h"
#include "runtime/task/task_evaluator.h"
#include "services/cli/job_config.h"
#include "services/jobspec/task_spec.h"
#include "services/trainer/task_loading.h"

namespace strata {
namespace {

bool IsFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

absl::Status Named(const std::string& what, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(what, ": ", status.message()));
}

nlohmann::json MetricsJson(const task::TaskScores& scores) {
  nlohmann::json out = nlohmann::json::object();
  out["loss"] = scores.loss;
  for (const auto& [name, value] : scores.metrics) out[name] = value;
  return out;
}

std::string MetricsLine(const task::TaskScores& scores) {
  std::string line = absl::StrFormat("loss %.4f", scores.loss);
  for (const auto& [name, value] : scores.metrics) absl::StrAppendFormat(&line, " | %s %.4f", name, value);
  return line;
}

}  // namespace

absl::Status RunEval(const std::vector<std::string>& args, const EvalShared& shared,
                     std::FILE* out) {
  if (args.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("eval takes flags only: unexpected argument \"", args[1], "\""));
  }
  if (shared.init_from.empty()) {
    return absl::InvalidArgumentError(
        "eval needs --init_from=DIR (a Hugging Face checkpoint directory or a job's export)");
  }
  if (shared.task.empty()) return absl::InvalidArgumentError("eval needs --task=FILE");
  if (shared.batch < 1) return absl::InvalidArgumentError("--batch must be positive");
  // The task, normalized as a job's would be.
  v1::JobSpec spec;
  spec.mutable_training()->set_seed(shared.seed);
  spec.mutable_optimizer()->mutable_zeroth_order();  // Any objective may be scored.
  absl::StatusOr<v1::TaskSpec> task = LoadTaskConfig(shared.task, shared.task_config);
  if (!task.ok()) return Named("--task", task.status());
  *spec.mutable_task() = *task;
  if (absl::Status s = NormalizeTask(spec); !s.ok()) return Named("--task=" + shared.task, s);
  const v1::TaskSpec& resolved = spec.task();
  const int shots = shared.shots >= 0 ? shared.shots : resolved.num_demonstrations();

  // The model, its adapters and the tokenizer.
  Transformer::Options options;
  options.threads = shared.threads;
  absl::StatusOr<std::unique_ptr<Transformer>> model = LoadHfCheckpoint(shared.init_from, options);
  if (!model.ok()) return Named("--init_from=" + shared.init_from, model.status());
  std::unique_ptr<TrainableAdapters> adapters;
  if (!shared.adapter.empty()) {
    absl::StatusOr<std::unique_ptr<TrainableAdapters>> loaded =
        LoadAdapters(shared.adapter, (*model)->layout());
    if (!loaded.ok()) return Named("--adapter=" + shared.adapter, loaded.status());
    adapters = *std::move(loaded);
    (*model)->SetAdapters(adapters.get(), /*base_frozen=*/true);
  }
  std::string tokenizer_path = shared.tokenizer;
  if (tokenizer_path.empty() && (IsFile(shared.init_from + "/tokenizer.json") ||
                                 (IsFile(shared.init_from + "/vocab.json") &&
                                  IsFile(shared.init_from + "/merges.txt")))) {
    tokenizer_path = shared.init_from;
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(tokenizer_path);
  if (!tokenizer.ok()) return Named("--tokenizer", tokenizer.status());
  // Said, never silent: a job's export holds no tokenizer of its own.
  std::fprintf(stderr, "tokenizer: %s\n",
               tokenizer_path.empty()
                   ? "the byte tokenizer (--init_from has none; give the model's with --tokenizer)"
                   : tokenizer_path.c_str());
  const ModelConfig& config = (*model)->config();
  const int room = config.max_seq_len - (*model)->PrefixLength();
  const int seq = shared.seq > 0 ? std::min(shared.seq, room) : room;

  const task::TaskDefinition definition = TaskDefinitionFromSpec(resolved);
  const task::BatchLoss loss = [&](absl::Span<const int32_t> x, absl::Span<const int32_t> y,
                                   int B, int T) { return (*model)->Loss(x, y, B, T); };
  Generator::Options generator_options;
  generator_options.model = model->get();
  generator_options.tokenizer = tokenizer->get();
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Generator> generator,
                          Generator::Create(generator_options));
  task::Decode decode;
  if (definition.kind == task::TaskKind::kGeneration) {
    decode = [&](const std::vector<int32_t>& prompt) -> absl::StatusOr<std::string> {
      GenerateOptions g;
      g.max_new_tokens = std::max(
          1, std::min(definition.max_new_tokens,
                      config.max_seq_len - (*model)->PrefixLength() -
                          static_cast<int>(prompt.size())));
      g.stop_strings = definition.stop;
      if ((*tokenizer)->eos_id() >= 0) g.stop_token_ids = {(*tokenizer)->eos_id()};
      if ((*tokenizer)->vocab_size() < config.vocab_size) g.vocab_limit = (*tokenizer)->vocab_size();
      STRATA_ASSIGN_OR_RETURN(Generation generation, generator->Generate(prompt, g));
      return generation.text;
    };
  }

  nlohmann::json report;
  report["task"] = definition.name;
  for (const int k : shots > 0 ? std::vector<int>{0, shots} : std::vector<int>{0}) {
    STRATA_ASSIGN_OR_RETURN(std::vector<task::TaskExample> examples,
                            LoadTaskEvalExamples(resolved, **tokenizer, config, k));
    STRATA_ASSIGN_OR_RETURN(task::TaskScores scores,
                            task::EvaluateTask(definition, examples, model->get(), loss,
                                               shared.batch, seq, decode));
    report["examples"] = examples.size();
    std::fprintf(stderr, "%s %s on %zu examples: %s\n", definition.name.c_str(),
                 k == 0 ? "zero-shot" : absl::StrCat(k, "-shot").c_str(), examples.size(),
                 MetricsLine(scores).c_str());
    report[k == 0 ? "zero_shot" : "k_shot"] = MetricsJson(scores);
  }
  report["shots"] = shots;
  std::fprintf(out, "%s\n", report.dump().c_str());
  return absl::OkStatus();
}

}  // namespace strata
