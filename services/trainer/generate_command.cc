// See generate_command.h.
#include "services/trainer/generate_command.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status_macros.h"
#include "runtime/data/tokenizer.h"
#include "runtime/generate/generator.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/peft/peft_checkpoint.h"
#include "services/common/main_util.h"

ABSL_FLAG(std::string, adapter, "",
          "generate: a PEFT adapter directory (LoRA or prefix tuning, e.g. a job's export) to "
          "attach to the --init_from model.");
ABSL_FLAG(std::string, prompt, "", "generate: the text to continue.");
ABSL_FLAG(int, max_new_tokens, 64,
          "generate: new tokens at most; the prompt and these must fit the model's positions.");
ABSL_FLAG(double, temperature, 0,
          "generate: 0 decodes greedily (the most likely token); > 0 samples from the softmax of "
          "the logits divided by it, drawn from --seed.");
ABSL_FLAG(int, top_k, 0, "generate, sampling: only the K most likely tokens are drawn. 0: all.");
ABSL_FLAG(double, top_p, 1,
          "generate, sampling: only the smallest set of most likely tokens whose probabilities "
          "reach P is drawn from (nucleus). 1: all.");
ABSL_FLAG(std::string, stop, "",
          "generate: stop strings, comma-separated (\\, for a comma, \\n newline, \\t tab, \\\\ "
          "backslash): decoding ends once the new text holds one, and the text printed ends "
          "before it. The tokenizer's end-of-text (and generation_config.json's eos_token_id) "
          "always stop it.");

namespace strata {
namespace {

// The flags train_main shares with the command.
constexpr const char* kSharedFlags[] = {"init_from", "tokenizer", "seed", "threads"};

bool IsFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// A Strata flag (not Abseil's own: --flagfile, --help...).
bool IsStrataFlag(const absl::CommandLineFlag& flag) {
  const std::string file = flag.Filename();
  return absl::StrContains(file, "services/") || absl::StrContains(file, "runtime/") ||
         absl::StrContains(file, "storage/");
}

bool IsSet(const absl::CommandLineFlag& flag) { return flag.CurrentValue() != flag.DefaultValue(); }

// Names of the set flags `pick` selects, sorted, as "--a, --b".
template <typename Pick>
std::string SetFlags(Pick pick) {
  std::vector<std::string> names;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (pick(*flag) && IsSet(*flag)) names.push_back(absl::StrCat("--", name));
  }
  std::sort(names.begin(), names.end());
  return absl::StrJoin(names, ", ");
}

// Every Strata flag that is set is the command's or shared with it.
absl::Status CheckOnlyGenerateFlags() {
  const std::string foreign = SetFlags([](const absl::CommandLineFlag& flag) {
    if (!IsStrataFlag(flag) || flag.Filename() == __FILE__) return false;
    for (const char* shared : kSharedFlags) {
      if (flag.Name() == shared) return false;
    }
    return true;
  });
  if (foreign.empty()) return absl::OkStatus();
  return UsageError(absl::InvalidArgumentError(
      absl::StrCat(foreign, ": not a flag of `strata-train generate` (see --help)")));
}

// The sampling the flags ask for, refused naming the flag.
absl::StatusOr<SamplingOptions> SamplingFromFlags(uint64_t seed) {
  SamplingOptions s;
  const double temperature = absl::GetFlag(FLAGS_temperature);
  const int top_k = absl::GetFlag(FLAGS_top_k);
  const double top_p = absl::GetFlag(FLAGS_top_p);
  if (!(temperature >= 0) || std::isinf(temperature)) {
    return UsageError(absl::InvalidArgumentError(
        absl::StrCat("--temperature=", temperature, " must be >= 0 (0: greedy)")));
  }
  if (top_k < 0) {
    return UsageError(
        absl::InvalidArgumentError(absl::StrCat("--top_k=", top_k, " must be >= 0 (0: no limit)")));
  }
  if (!(top_p > 0 && top_p <= 1)) {
    return UsageError(absl::InvalidArgumentError(
        absl::StrCat("--top_p=", top_p, " must be in (0, 1] (1: no filter)")));
  }
  if (temperature == 0 && (top_k != 0 || top_p != 1)) {
    return UsageError(absl::InvalidArgumentError(
        absl::StrCat(top_k != 0 ? "--top_k" : "--top_p",
                     " filters sampling: it needs --temperature > 0 (0 decodes greedily)")));
  }
  s.temperature = static_cast<float>(temperature);
  s.top_k = top_k;
  s.top_p = static_cast<float>(top_p);
  s.seed = seed;
  return s;
}

// --tokenizer, or the model directory's tokenizer when it has one, else the byte tokenizer.
absl::StatusOr<std::unique_ptr<Tokenizer>> TokenizerFor(const GenerateShared& shared,
                                                        std::string* source) {
  std::string path = shared.tokenizer;
  if (path.empty()) {
    const std::string& dir = shared.init_from;
    if (IsFile(dir + "/tokenizer.json") ||
        (IsFile(dir + "/vocab.json") && IsFile(dir + "/merges.txt"))) {
      path = dir;
    }
  }
  *source = path.empty() ? "the byte tokenizer" : path;
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(path);
  if (!tokenizer.ok()) {
    return Prefixed(shared.tokenizer.empty() ? absl::StrCat("--init_from=", shared.init_from)
                                             : absl::StrCat("--tokenizer=", shared.tokenizer),
                    tokenizer.status());
  }
  return tokenizer;
}

// The ids that end decoding: the tokenizer's end-of-text and generation_config.json's
// eos_token_id (an id or a list) where the model directory has one.
absl::StatusOr<std::vector<int32_t>> StopIds(const std::string& dir, const Tokenizer& tokenizer) {
  std::vector<int32_t> ids;
  if (tokenizer.eos_id() >= 0) ids.push_back(tokenizer.eos_id());
  const std::string path = dir + "/generation_config.json";
  if (!IsFile(path)) return ids;
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json config = nlohmann::json::parse(text.str(), nullptr, false);
  if (config.is_discarded() || !config.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }
  const auto eos = config.find("eos_token_id");
  if (eos == config.end() || eos->is_null()) return ids;
  const nlohmann::json list = eos->is_array() ? *eos : nlohmann::json::array({*eos});
  for (const nlohmann::json& id : list) {
    if (!id.is_number_integer()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": eos_token_id holds ", id.dump(), ", not a token id"));
    }
    ids.push_back(id.get<int32_t>());
  }
  return ids;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseStopList(const std::string& value) {
  std::vector<std::string> stops;
  if (value.empty()) return stops;
  std::string current;
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c == ',') {
      stops.push_back(std::move(current));
      current.clear();
    } else if (c != '\\') {
      current += c;
    } else if (i + 1 == value.size()) {
      return absl::InvalidArgumentError("--stop ends in a lone backslash (\\\\ is a backslash)");
    } else {
      switch (value[++i]) {
        case ',':
          current += ',';
          break;
        case 'n':
          current += '\n';
          break;
        case 't':
          current += '\t';
          break;
        case '\\':
          current += '\\';
          break;
        default:
          return absl::InvalidArgumentError(absl::StrCat(
              "--stop: \\", std::string(1, value[i]), " is not an escape (\\, \\n \\t \\\\ are)"));
      }
    }
  }
  stops.push_back(std::move(current));
  for (const std::string& s : stops) {
    if (s.empty()) return absl::InvalidArgumentError("--stop holds an empty stop string");
  }
  return stops;
}

absl::Status RefuseGenerateFlags() {
  const std::string set =
      SetFlags([](const absl::CommandLineFlag& flag) { return flag.Filename() == __FILE__; });
  if (set.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      set, ": a flag of `strata-train generate`, given without the command (see --help)"));
}

absl::Status RunGenerate(const std::vector<std::string>& args, const GenerateShared& shared,
                         std::FILE* out) {
  if (args.size() > 1) {
    return UsageError(absl::InvalidArgumentError(absl::StrCat(
        "generate takes flags only: unexpected argument \"", args[1], "\" (see --help)")));
  }
  STRATA_RETURN_IF_ERROR(CheckOnlyGenerateFlags());
  if (shared.init_from.empty()) {
    return UsageError(absl::InvalidArgumentError(
        "generate needs --init_from=DIR (a Hugging Face checkpoint directory or a job's export)"));
  }
  if (!IsFile(shared.init_from + "/config.json") &&
      IsFile(shared.init_from + "/adapter_config.json")) {
    return UsageError(absl::InvalidArgumentError(
        absl::StrCat("--init_from=", shared.init_from,
                     " holds a PEFT adapter: give its base model as --init_from and this "
                     "directory as --adapter")));
  }
  const int max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  if (max_new_tokens < 1) {
    return UsageError(absl::InvalidArgumentError(
        absl::StrCat("--max_new_tokens=", max_new_tokens, " must be >= 1")));
  }
  if (shared.threads < 0) {
    return UsageError(absl::InvalidArgumentError(
        absl::StrCat("--threads=", shared.threads, " must be >= 0 (0: one per CPU)")));
  }
  STRATA_ASSIGN_OR_RETURN(SamplingOptions sampling, SamplingFromFlags(shared.seed));
  absl::StatusOr<std::vector<std::string>> stops = ParseStopList(absl::GetFlag(FLAGS_stop));
  if (!stops.ok()) return UsageError(stops.status());

  // The model, its adapters and the tokenizer.
  Transformer::Options model_options;
  model_options.threads = shared.threads;
  absl::StatusOr<std::unique_ptr<Transformer>> model =
      LoadHfCheckpoint(shared.init_from, model_options);
  if (!model.ok()) return Prefixed(absl::StrCat("--init_from=", shared.init_from), model.status());
  std::unique_ptr<TrainableAdapters> adapters;
  if (const std::string dir = absl::GetFlag(FLAGS_adapter); !dir.empty()) {
    absl::StatusOr<std::unique_ptr<TrainableAdapters>> loaded =
        LoadAdapters(dir, (*model)->layout());
    if (!loaded.ok()) return Prefixed(absl::StrCat("--adapter=", dir), loaded.status());
    adapters = *std::move(loaded);
    (*model)->SetAdapters(adapters.get(), /*base_frozen=*/true);
  }
  std::string tokenizer_source;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer,
                          TokenizerFor(shared, &tokenizer_source));
  const ModelConfig& config = (*model)->config();
  if (tokenizer->vocab_size() > config.vocab_size) {
    return UsageError(absl::InvalidArgumentError(
        absl::StrCat("--tokenizer: the vocabulary of ", tokenizer_source, " (",
                     tokenizer->vocab_size(), " ids) is larger than the model's (",
                     config.vocab_size, "): give the model's own tokenizer")));
  }

  // The prompt, and room for it.
  absl::StatusOr<std::vector<int32_t>> prompt = tokenizer->Encode(absl::GetFlag(FLAGS_prompt));
  if (!prompt.ok()) return Prefixed("--prompt", prompt.status());
  if (prompt->empty()) {
    return UsageError(absl::InvalidArgumentError(
        "--prompt is empty: generation continues a text of at least one token"));
  }
  const int prefix = (*model)->PrefixLength();
  const int room = config.max_seq_len - prefix - static_cast<int>(prompt->size());
  if (max_new_tokens > room) {
    return UsageError(absl::InvalidArgumentError(absl::StrCat(
        "--prompt (", prompt->size(), " tokens) and --max_new_tokens=", max_new_tokens,
        " exceed the model's maximum sequence length ", config.max_seq_len,
        prefix > 0 ? absl::StrCat(" less the adapter's prefix of ", prefix) : "", ": ",
        room > 0 ? absl::StrCat("at most ", room, " new tokens fit") : "no new token fits")));
  }

  GenerateOptions options;
  options.max_new_tokens = max_new_tokens;
  options.sampling = sampling;
  options.stop_strings = *std::move(stops);
  STRATA_ASSIGN_OR_RETURN(options.stop_token_ids, StopIds(shared.init_from, *tokenizer));
  if (tokenizer->vocab_size() < config.vocab_size) options.vocab_limit = tokenizer->vocab_size();
  Generator::Options generator_options;
  generator_options.model = model->get();
  generator_options.tokenizer = tokenizer.get();
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Generator> generator,
                          Generator::Create(generator_options));
  STRATA_ASSIGN_OR_RETURN(Generation generation, generator->Generate(*prompt, options));
  std::fwrite(generation.text.data(), 1, generation.text.size(), out);
  std::fputc('\n', out);
  std::fflush(out);
  std::fprintf(stderr, "strata-train generate: %zu prompt + %zu new tokens (%s), stopped by %s\n",
               prompt->size(), generation.tokens.size(), tokenizer_source.c_str(),
               FinishReasonName(generation.finish));
  return absl::OkStatus();
}

}  // namespace strata
