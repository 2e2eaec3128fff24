// See job_config.h. YAML -> JSON (libyaml's document API, nlohmann::json) -> JobSpec
// (protobuf's JSON parser, which accepts the proto field names and enum value names). Plain
// scalars become numbers, booleans or null when they read as one; quoted scalars stay strings.
#include "services/cli/job_config.h"

#include <yaml.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace strata {
namespace {

using Json = nlohmann::json;

Json Scalar(const std::string& text, bool plain) {
  if (!plain) return text;
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  if (text.empty() || text == "~" || text == "null" || text == "Null") return nullptr;
  int64_t i = 0;
  if (absl::SimpleAtoi(text, &i)) return i;
  double d = 0;
  if (text.find_first_of("0123456789") != std::string::npos && absl::SimpleAtod(text, &d)) {
    return d;
  }
  return text;
}

absl::StatusOr<Json> Convert(yaml_document_t* doc, yaml_node_t* node, const std::string& name,
                             int depth) {
  if (depth > 64) return absl::InvalidArgumentError(name + ": nested too deeply");
  const int line = static_cast<int>(node->start_mark.line) + 1;
  switch (node->type) {
    case YAML_SCALAR_NODE: {
      const std::string text(reinterpret_cast<const char*>(node->data.scalar.value),
                             node->data.scalar.length);
      return Scalar(text, node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE);
    }
    case YAML_SEQUENCE_NODE: {
      Json out = Json::array();
      for (yaml_node_item_t* item = node->data.sequence.items.start;
           item < node->data.sequence.items.top; ++item) {
        absl::StatusOr<Json> value =
            Convert(doc, yaml_document_get_node(doc, *item), name, depth + 1);
        if (!value.ok()) return value.status();
        out.push_back(*std::move(value));
      }
      return out;
    }
    case YAML_MAPPING_NODE: {
      Json out = Json::object();
      for (yaml_node_pair_t* pair = node->data.mapping.pairs.start;
           pair < node->data.mapping.pairs.top; ++pair) {
        yaml_node_t* key = yaml_document_get_node(doc, pair->key);
        if (key->type != YAML_SCALAR_NODE) {
          return absl::InvalidArgumentError(
              absl::StrCat(name, ":", key->start_mark.line + 1, ": keys must be plain names"));
        }
        const std::string k(reinterpret_cast<const char*>(key->data.scalar.value),
                            key->data.scalar.length);
        if (out.contains(k)) {
          return absl::InvalidArgumentError(
              absl::StrCat(name, ":", key->start_mark.line + 1, ": duplicate key \"", k, "\""));
        }
        absl::StatusOr<Json> value =
            Convert(doc, yaml_document_get_node(doc, pair->value), name, depth + 1);
        if (!value.ok()) return value.status();
        out[k] = *std::move(value);
      }
      return out;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat(name, ":", line, ": empty node"));
  }
}

absl::StatusOr<Json> ParseYaml(const std::string& text, const std::string& name) {
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) return absl::InternalError("libyaml init failed");
  yaml_parser_set_input_string(&parser, reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());
  yaml_document_t doc;
  if (!yaml_parser_load(&parser, &doc)) {
    absl::Status status = absl::InvalidArgumentError(
        absl::StrCat(name, ":", parser.problem_mark.line + 1, ":", parser.problem_mark.column + 1,
                     ": ", parser.problem != nullptr ? parser.problem : "YAML syntax error",
                     parser.context != nullptr ? absl::StrCat(" ", parser.context) : ""));
    yaml_parser_delete(&parser);
    return status;
  }
  yaml_node_t* root = yaml_document_get_root_node(&doc);
  absl::StatusOr<Json> json = root == nullptr ? Json::object() : Convert(&doc, root, name, 0);
  yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  if (json.ok() && !json->is_object()) {
    return absl::InvalidArgumentError(name + ": the top level must be a mapping of keys");
  }
  return json;
}

// The message `yaml` (with `overrides`) describes, or the error naming the line or field.
absl::Status ParseYamlMessage(const std::string& yaml, const std::string& name,
                              const std::vector<std::string>& overrides,
                              google::protobuf::Message* out) {
  absl::StatusOr<Json> json = ParseYaml(yaml, name);
  if (!json.ok()) return json.status();
  for (const std::string& item : overrides) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--config \"", item, "\": expected dotted.key=value"));
    }
    absl::StatusOr<Json> value = ParseYaml("v: " + item.substr(eq + 1), "--config " + item);
    if (!value.ok()) return value.status();
    Json* node = &*json;
    std::vector<std::string> path = absl::StrSplit(item.substr(0, eq), '.');
    for (size_t i = 0; i + 1 < path.size(); ++i) {
      Json& next = (*node)[path[i]];
      if (next.is_null()) next = Json::object();
      if (!next.is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--config ", item, ": ", path[i], " is not a section"));
      }
      node = &next;
    }
    (*node)[path.back()] = (*value)["v"];
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(json->dump(), out, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", status.message().as_string()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadConfigFile(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", what, " ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

absl::StatusOr<v1::JobSpec> ParseJobConfig(const std::string& yaml, const std::string& name,
                                           const std::vector<std::string>& overrides) {
  v1::JobSpec spec;
  if (absl::Status s = ParseYamlMessage(yaml, name, overrides, &spec); !s.ok()) return s;
  return spec;
}

absl::StatusOr<v1::JobSpec> LoadJobConfig(const std::string& path,
                                          const std::vector<std::string>& overrides) {
  absl::StatusOr<std::string> text = ReadConfigFile(path, "job config");
  if (!text.ok()) return text.status();
  return ParseJobConfig(*text, path, overrides);
}

absl::StatusOr<v1::TaskSpec> ParseTaskConfig(const std::string& yaml, const std::string& name,
                                             const std::vector<std::string>& overrides) {
  v1::TaskSpec spec;
  if (absl::Status s = ParseYamlMessage(yaml, name, overrides, &spec); !s.ok()) return s;
  return spec;
}

absl::StatusOr<v1::TaskSpec> LoadTaskConfig(const std::string& path,
                                            const std::vector<std::string>& overrides) {
  absl::StatusOr<std::string> text = ReadConfigFile(path, "task file");
  if (!text.ok()) return text.status();
  return ParseTaskConfig(*text, path, overrides);
}

}  // namespace strata
