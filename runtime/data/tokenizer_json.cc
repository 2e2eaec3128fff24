// See tokenizer_json.h.
#include "runtime/data/tokenizer_json.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/base/shown_value.h"
#include "runtime/base/status_macros.h"
#include "runtime/data/unicode_normalizer.h"

namespace strata {
namespace {

using Json = nlohmann::json;

class Parser {
 public:
  explicit Parser(absl::string_view source) : source_(source) {}

  absl::Status Bad(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": ", what));
  }

  std::string TypeOf(const Json& j) const {
    return j.is_object() && j.contains("type") && j["type"].is_string()
               ? j["type"].get<std::string>()
               : "";
  }

  absl::Status Model(const Json& model, BpeModel* out) const {
    if (!model.is_object()) return Bad("missing \"model\"");
    if (TypeOf(model) != "BPE") {
      return Bad("model.type must be \"BPE\" (only byte-level BPE tokenizers are supported)");
    }
    if (!model.contains("vocab") || !model["vocab"].is_object()) return Bad("missing model.vocab");
    for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
      if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
          it.value().get<int64_t>() > (1 << 24)) {
        return Bad(
            absl::StrCat("model.vocab[", ShownValue(it.key()), "] must be a non-negative id"));
      }
      out->vocab[it.key()] = it.value().get<int32_t>();
    }
    if (!model.contains("merges") || !model["merges"].is_array())
      return Bad("missing model.merges");
    out->merges.reserve(model["merges"].size());
    for (const Json& merge : model["merges"]) {
      const size_t rank = out->merges.size();
      if (merge.is_string()) {
        const std::string& s = merge.get_ref<const std::string&>();
        const size_t space = s.find(' ');
        if (space == std::string::npos || space == 0 || space + 1 == s.size() ||
            s.find(' ', space + 1) != std::string::npos) {
          return Bad(absl::StrCat("model.merges[", rank, "] must be two symbols split by a space"));
        }
        out->merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
                 merge[1].is_string()) {
        out->merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
      } else {
        return Bad(absl::StrCat("model.merges[", rank, "] must be \"a b\" or [\"a\", \"b\"]"));
      }
    }
    out->ignore_merges = model.value("ignore_merges", false);
    if (model.value("byte_fallback", false)) return Bad("model.byte_fallback is not supported");
    if (model.contains("dropout") && model["dropout"].is_number() &&
        model["dropout"].get<double>() != 0) {
      return Bad("model.dropout is not supported (encoding would not be deterministic)");
    }
    for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (model.contains(affix) && model[affix].is_string() &&
          !model[affix].get<std::string>().empty()) {
        return Bad(absl::StrCat("model.", affix, " is not supported"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status AddedTokens(const Json& tokens, BpeModel* out) const {
    if (tokens.is_null()) return absl::OkStatus();
    if (!tokens.is_array()) return Bad("added_tokens must be an array");
    for (size_t i = 0; i < tokens.size(); ++i) {
      const Json& t = tokens[i];
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() ||
          !t.contains("content") || !t["content"].is_string()) {
        return Bad(absl::StrCat("added_tokens[", i, "] needs an integer \"id\" and \"content\""));
      }
      if (t.value("single_word", false)) {
        return Bad(absl::StrCat("added_tokens[", i, "].single_word is not supported"));
      }
      BpeModel::AddedToken a;
      a.content = t["content"].get<std::string>();
      a.id = t["id"].get<int32_t>();
      a.special = t.value("special", false);
      a.lstrip = t.value("lstrip", false);
      a.rstrip = t.value("rstrip", false);
      out->added_tokens.push_back(std::move(a));
    }
    return absl::OkStatus();
  }

  absl::Status Normalizer(const Json& spec, BpeModel* out) const {
    if (spec.is_null()) return absl::OkStatus();
    std::string form = TypeOf(spec);
    if (form == "Sequence") {
      const Json& steps = spec.value("normalizers", Json());
      if (!steps.is_array() || steps.size() > 1) {
        return Bad("normalizer: only a Sequence of one Unicode normalization form is supported");
      }
      if (steps.empty()) return absl::OkStatus();
      form = TypeOf(steps[0]);
    }
    absl::StatusOr<std::unique_ptr<TextNormalizer>> n = CreateUnicodeNormalizer(form);
    if (!n.ok()) return Bad(absl::StrCat("normalizer: ", n.status().message()));
    out->normalizer = *std::move(n);
    return absl::OkStatus();
  }

  // ByteLevel (GPT-2 regex unless use_regex is false), possibly after a Split.
  absl::Status PreTokenizer(const Json& pre, BpeModel* out) const {
    std::vector<Json> steps;
    if (TypeOf(pre) == "Sequence" && pre.contains("pretokenizers")) {
      for (const Json& p : pre["pretokenizers"]) steps.push_back(p);
    } else if (!pre.is_null()) {
      steps.push_back(pre);
    }
    for (const Json& step : steps) {
      const std::string type = TypeOf(step);
      if (type == "Split") {
        if (!step.contains("pattern") || !step["pattern"].is_object() ||
            !step["pattern"].contains("Regex") || !step["pattern"]["Regex"].is_string()) {
          return Bad("Split pre-tokenizer needs pattern.Regex");
        }
        if (step.value("behavior", "Isolated") != "Isolated" || step.value("invert", false)) {
          return Bad("only Split with behavior \"Isolated\" and invert false is supported");
        }
        out->pattern = step["pattern"]["Regex"].get<std::string>();
      } else if (type == "ByteLevel") {
        out->add_prefix_space = step.value("add_prefix_space", false);
        if (step.value("use_regex", true)) out->pattern = kGpt2PreTokenizerPattern;
      } else {
        return Bad(absl::StrCat("pre_tokenizer type ", ShownValue(type), " is not supported"));
      }
    }
    return absl::OkStatus();
  }

  // TemplateProcessing's "single": special tokens before $A go in front of every text, those
  // after it behind.
  absl::Status Template(const Json& p, BpeModel* out) const {
    const Json& single = p.value("single", Json());
    const Json& specials = p.value("special_tokens", Json::object());
    if (!single.is_array()) return Bad("post_processor.single must be an array");
    bool seen_a = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const Json& item = single[i];
      const std::string where = absl::StrCat("post_processor.single[", i, "]");
      if (item.is_object() && item.contains("Sequence")) {
        if (seen_a || item["Sequence"].value("id", "") != "A") {
          return Bad(absl::StrCat(where, ": only one sequence, $A, is supported"));
        }
        seen_a = true;
      } else if (item.is_object() && item.contains("SpecialToken") &&
                 item["SpecialToken"].contains("id") && item["SpecialToken"]["id"].is_string()) {
        const std::string name = item["SpecialToken"]["id"].get<std::string>();
        if (!specials.is_object() || !specials.contains(name) || !specials[name].contains("ids") ||
            !specials[name]["ids"].is_array()) {
          return Bad(absl::StrCat(where, ": special token ", ShownValue(name),
                                  " is not in post_processor.special_tokens"));
        }
        for (const Json& id : specials[name]["ids"]) {
          if (!id.is_number_integer()) {
            return Bad(absl::StrCat("post_processor.special_tokens[", ShownValue(name),
                                    "].ids must be integers"));
          }
          (seen_a ? out->suffix_ids : out->prefix_ids).push_back(id.get<int32_t>());
        }
      } else {
        return Bad(absl::StrCat(where, " must be a Sequence or a SpecialToken"));
      }
    }
    if (!seen_a) return Bad("post_processor.single has no $A");
    return absl::OkStatus();
  }

  absl::Status PostProcessor(const Json& p, BpeModel* out) const {
    if (p.is_null()) return absl::OkStatus();
    const std::string type = TypeOf(p);
    if (type == "ByteLevel") return absl::OkStatus();  // Only moves offsets; ids unchanged.
    if (type == "TemplateProcessing") return Template(p, out);
    if (type == "Sequence") {
      const Json& steps = p.value("processors", Json());
      if (!steps.is_array()) return Bad("post_processor.processors must be an array");
      for (const Json& step : steps) {
        if (TypeOf(step) == "Sequence") return Bad("nested post_processor Sequence");
        STRATA_RETURN_IF_ERROR(PostProcessor(step, out));
      }
      return absl::OkStatus();
    }
    return Bad(absl::StrCat("post_processor type ", ShownValue(type), " is not supported"));
  }

  absl::Status Decoder(const Json& d) const {
    if (d.is_null() || TypeOf(d) == "ByteLevel") return absl::OkStatus();
    return Bad(absl::StrCat("decoder type ", ShownValue(TypeOf(d)), " is not supported"));
  }

 private:
  std::string source_;
};

}  // namespace

absl::StatusOr<BpeModel> ParseTokenizerJson(absl::string_view text, absl::string_view source) {
  const Json json = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  const Parser parser(source);
  if (json.is_discarded() || !json.is_object()) return parser.Bad("not a JSON object");
  BpeModel model;
  model.source = std::string(source);
  const Json null;
  auto field = [&](const char* name) -> const Json& {
    return json.contains(name) ? json[name] : null;
  };
  if (!json.contains("model")) return parser.Bad("missing \"model\"");
  STRATA_RETURN_IF_ERROR(parser.Model(json["model"], &model));
  STRATA_RETURN_IF_ERROR(parser.AddedTokens(field("added_tokens"), &model));
  STRATA_RETURN_IF_ERROR(parser.Normalizer(field("normalizer"), &model));
  STRATA_RETURN_IF_ERROR(parser.PreTokenizer(field("pre_tokenizer"), &model));
  STRATA_RETURN_IF_ERROR(parser.PostProcessor(field("post_processor"), &model));
  STRATA_RETURN_IF_ERROR(parser.Decoder(field("decoder")));
  return model;
}

absl::StatusOr<std::string> ReadTokenizerFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open tokenizer file ", path));
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read tokenizer file ", path));
  return text.str();
}

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::FromJson(absl::string_view json,
                                                                     absl::string_view source) {
  STRATA_ASSIGN_OR_RETURN(BpeModel model, ParseTokenizerJson(json, source));
  return Create(std::move(model));
}

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::FromFile(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(std::string text, ReadTokenizerFile(path));
  return FromJson(text, path);
}

}  // namespace strata
