// See gpt2_vocab_files.h.
#include "runtime/data/gpt2_vocab_files.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/base/shown_value.h"
#include "runtime/base/status_macros.h"
#include "runtime/data/tokenizer_json.h"

namespace strata {

absl::StatusOr<BpeModel> ParseGpt2VocabFiles(absl::string_view vocab_json,
                                             absl::string_view vocab_source,
                                             absl::string_view merges_txt,
                                             absl::string_view merges_source) {
  using Json = nlohmann::json;
  const Json vocab =
      Json::parse(vocab_json.begin(), vocab_json.end(), nullptr, /*allow_exceptions=*/false);
  if (vocab.is_discarded() || !vocab.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(vocab_source, ": not a JSON object of token -> id"));
  }
  BpeModel model;
  model.source = absl::StrCat(vocab_source, " + ", merges_source);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > (1 << 24)) {
      return absl::InvalidArgumentError(absl::StrCat(
          vocab_source, ": the id of ", ShownValue(it.key()), " must be a non-negative integer"));
    }
    model.vocab[it.key()] = it.value().get<int32_t>();
  }
  int line_number = 0;
  for (size_t pos = 0; pos < merges_txt.size();) {
    size_t end = merges_txt.find('\n', pos);
    if (end == absl::string_view::npos) end = merges_txt.size();
    absl::string_view line = merges_txt.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (absl::EndsWith(line, "\r")) line.remove_suffix(1);
    if (line_number == 1 && absl::StartsWith(line, "#version")) continue;
    if (line.empty()) continue;  // The trailing newline, or blank lines.
    const size_t space = line.find(' ');
    if (space == absl::string_view::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(merges_source, ":", line_number,
                                                     ": expected two symbols split by one "
                                                     "space, got ",
                                                     ShownValue(line)));
    }
    model.merges.emplace_back(std::string(line.substr(0, space)),
                              std::string(line.substr(space + 1)));
  }
  model.pattern = kGpt2PreTokenizerPattern;
  return model;
}

absl::StatusOr<BpeModel> ReadGpt2VocabFiles(const std::string& vocab_path,
                                            const std::string& merges_path) {
  STRATA_ASSIGN_OR_RETURN(std::string vocab, ReadTokenizerFile(vocab_path));
  STRATA_ASSIGN_OR_RETURN(std::string merges, ReadTokenizerFile(merges_path));
  return ParseGpt2VocabFiles(vocab, vocab_path, merges, merges_path);
}

}  // namespace strata
