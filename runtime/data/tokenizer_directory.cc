// See tokenizer_directory.h. Also defines LoadTokenizer (declared in tokenizer.h).
#include "runtime/data/tokenizer_directory.h"

#include <sys/stat.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"
#include "runtime/data/gpt2_vocab_files.h"
#include "runtime/data/tokenizer_json.h"

namespace strata {
namespace {

bool IsFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

absl::StatusOr<TokenizerConfig> ReadTokenizerConfig(const std::string& dir) {
  TokenizerConfig config;
  config.source = dir;
  const std::string config_path = absl::StrCat(dir, "/tokenizer_config.json");
  if (IsFile(config_path)) {
    STRATA_ASSIGN_OR_RETURN(std::string text, ReadTokenizerFile(config_path));
    STRATA_ASSIGN_OR_RETURN(config, ParseTokenizerConfig(text, config_path));
  }
  const std::string map_path = absl::StrCat(dir, "/special_tokens_map.json");
  if (IsFile(map_path)) {
    STRATA_ASSIGN_OR_RETURN(std::string text, ReadTokenizerFile(map_path));
    STRATA_ASSIGN_OR_RETURN(TokenizerConfig map, ParseTokenizerConfig(text, map_path));
    OverrideSpecialTokens(map, &config);
  }
  const std::string template_path = absl::StrCat(dir, "/chat_template.jinja");
  if (IsFile(template_path)) {
    STRATA_ASSIGN_OR_RETURN(config.chat_template, ReadTokenizerFile(template_path));
  }
  return config;
}

absl::StatusOr<std::unique_ptr<BpeTokenizer>> LoadTokenizerFromDirectory(const std::string& dir) {
  if (!IsDirectory(dir)) return absl::NotFoundError(absl::StrCat(dir, " is not a directory"));
  BpeModel model;
  const std::string json_path = absl::StrCat(dir, "/tokenizer.json");
  const std::string vocab_path = absl::StrCat(dir, "/vocab.json");
  const std::string merges_path = absl::StrCat(dir, "/merges.txt");
  if (IsFile(json_path)) {
    STRATA_ASSIGN_OR_RETURN(std::string text, ReadTokenizerFile(json_path));
    STRATA_ASSIGN_OR_RETURN(model, ParseTokenizerJson(text, json_path));
  } else if (IsFile(vocab_path) && IsFile(merges_path)) {
    STRATA_ASSIGN_OR_RETURN(model, ReadGpt2VocabFiles(vocab_path, merges_path));
  } else {
    return absl::NotFoundError(
        absl::StrCat(dir, " has no tokenizer: neither tokenizer.json nor vocab.json + merges.txt"));
  }
  STRATA_ASSIGN_OR_RETURN(TokenizerConfig config, ReadTokenizerConfig(dir));
  STRATA_RETURN_IF_ERROR(ApplyTokenizerConfig(config, &model));
  return BpeTokenizer::Create(std::move(model));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path) {
  if (path.empty()) return std::unique_ptr<Tokenizer>(new ByteTokenizer());
  if (IsDirectory(path)) {
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<BpeTokenizer> bpe, LoadTokenizerFromDirectory(path));
    return std::unique_ptr<Tokenizer>(std::move(bpe));
  }
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<BpeTokenizer> bpe, BpeTokenizer::FromFile(path));
  return std::unique_ptr<Tokenizer>(std::move(bpe));
}

}  // namespace strata
