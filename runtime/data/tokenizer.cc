// See tokenizer.h.
#include "runtime/data/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "runtime/base/shown_value.h"
#include "nlohmann/json.hpp"

namespace strata {
namespace {

using Json = nlohmann::json;

// GPT-2's pre-tokenization pattern (ByteLevel with use_regex = true).
constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Length of the UTF-8 sequence starting with byte `b` (1 for invalid lead bytes).
int Utf8Length(unsigned char b) {
  if (b < 0x80) return 1;
  if ((b >> 5) == 0x6) return 2;
  if ((b >> 4) == 0xE) return 3;
  if ((b >> 3) == 0x1E) return 4;
  return 1;
}

// GPT-2's reversible byte -> printable character map.
struct ByteMap {
  std::string byte_to_utf8[256];
  absl::flat_hash_map<std::string, uint8_t> utf8_to_byte;
  ByteMap() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : 256 + n++;
      AppendUtf8(cp, &byte_to_utf8[b]);
      utf8_to_byte[byte_to_utf8[b]] = static_cast<uint8_t>(b);
    }
  }
};

const ByteMap& Bytes() {
  static const ByteMap* map = new ByteMap();
  return *map;
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> ByteTokenizer::Encode(absl::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  for (unsigned char c : text) ids.push_back(c);
  return ids;
}

absl::StatusOr<std::string> ByteTokenizer::Decode(absl::Span<const int32_t> ids) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id > 256)
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " is not a byte"));
    if (id < 256) out.push_back(static_cast<char>(id));
  }
  return out;
}

struct BpeTokenizer::Impl {
  absl::flat_hash_map<std::string, int32_t> vocab;
  std::vector<std::string> id_to_token;
  absl::flat_hash_map<std::string, int32_t> merge_rank;  // "left right" -> rank.
  struct Added {
    std::string content;
    int32_t id;
  };
  std::vector<Added> added;  // Longest first.
  std::vector<bool> is_added;
  pcre2_code* regex = nullptr;
  bool add_prefix_space = false;
  bool ignore_merges = false;
  int eos = -1;
  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  ~Impl() {
    if (regex != nullptr) pcre2_code_free(regex);
  }

  absl::Status Compile(const std::string& pattern, absl::string_view source) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    regex = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error, &offset, nullptr);
    if (regex == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      return absl::InvalidArgumentError(absl::StrCat(source, ": pre-tokenizer pattern at offset ",
                                                     offset, ": ",
                                                     reinterpret_cast<char*>(message)));
    }
    pcre2_jit_compile(regex, PCRE2_JIT_COMPLETE);  // Best effort; falls back to the interpreter.
    return absl::OkStatus();
  }

  // Splits `text` into pre-tokens (matches and the gaps between them).
  absl::Status PreTokenize(absl::string_view text, std::vector<absl::string_view>* pieces) const {
    if (regex == nullptr) {
      pieces->push_back(text);
      return absl::OkStatus();
    }
    pcre2_match_data* match = pcre2_match_data_create_from_pattern(regex, nullptr);
    size_t pos = 0, last = 0;
    absl::Status status;
    while (pos < text.size()) {
      const int rc = pcre2_match(regex, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos,
                                 0, match, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        status = absl::InvalidArgumentError(absl::StrCat("pre-tokenization failed at byte ", pos,
                                                         " (invalid UTF-8 in the input?)"));
        break;
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match);
      const size_t begin = ov[0], end = ov[1];
      if (end == begin) {  // An empty match: step over one character (it joins a gap).
        pos = begin + Utf8Length(static_cast<unsigned char>(text[begin]));
        continue;
      }
      if (begin > last) pieces->push_back(text.substr(last, begin - last));
      pieces->push_back(text.substr(begin, end - begin));
      last = pos = end;
    }
    if (status.ok() && last < text.size()) pieces->push_back(text.substr(last));
    pcre2_match_data_free(match);
    return status;
  }

  // Byte-level BPE of one pre-token.
  absl::Status Bpe(absl::string_view piece, std::vector<int32_t>* out) const {
    const std::string key(piece);
    {
      std::lock_guard<std::mutex> lock(cache_mu);
      auto it = cache.find(key);
      if (it != cache.end()) {
        out->insert(out->end(), it->second.begin(), it->second.end());
        return absl::OkStatus();
      }
    }
    const ByteMap& bytes = Bytes();
    std::vector<std::string> symbols;
    std::string whole;
    for (unsigned char c : piece) {
      symbols.push_back(bytes.byte_to_utf8[c]);
      whole += bytes.byte_to_utf8[c];
    }
    std::vector<int32_t> ids;
    auto whole_it = vocab.find(whole);
    if (ignore_merges && whole_it != vocab.end()) {
      ids.push_back(whole_it->second);
    } else {
      while (symbols.size() > 1) {
        int best = std::numeric_limits<int>::max();
        size_t best_at = 0;
        for (size_t i = 0; i + 1 < symbols.size(); ++i) {
          auto it = merge_rank.find(absl::StrCat(symbols[i], " ", symbols[i + 1]));
          if (it != merge_rank.end() && it->second < best) {
            best = it->second;
            best_at = i;
          }
        }
        if (best == std::numeric_limits<int>::max()) break;
        // Merge every occurrence of the best pair, left to right.
        const std::string left = symbols[best_at], right = symbols[best_at + 1];
        std::vector<std::string> merged;
        for (size_t i = 0; i < symbols.size();) {
          if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
            merged.push_back(left + right);
            i += 2;
          } else {
            merged.push_back(symbols[i]);
            ++i;
          }
        }
        symbols.swap(merged);
      }
      for (const std::string& s : symbols) {
        auto it = vocab.find(s);
        if (it == vocab.end()) {
          return absl::InvalidArgumentError(
              absl::StrCat("token \"", s, "\" produced by the merges is not in the vocabulary"));
        }
        ids.push_back(it->second);
      }
    }
    out->insert(out->end(), ids.begin(), ids.end());
    std::lock_guard<std::mutex> lock(cache_mu);
    if (cache.size() < 200000) cache.emplace(key, std::move(ids));
    return absl::OkStatus();
  }

  absl::Status EncodeSegment(absl::string_view text, std::vector<int32_t>* out) const {
    std::string prefixed;
    if (add_prefix_space && !text.empty() && text[0] != ' ') {
      prefixed = absl::StrCat(" ", text);
      text = prefixed;
    }
    std::vector<absl::string_view> pieces;
    if (absl::Status s = PreTokenize(text, &pieces); !s.ok()) return s;
    for (absl::string_view piece : pieces) {
      if (absl::Status s = Bpe(piece, out); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
};

BpeTokenizer::BpeTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpeTokenizer::~BpeTokenizer() = default;

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::FromJson(absl::string_view text,
                                                                     absl::string_view source) {
  Json json = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", what));
  };
  if (json.is_discarded() || !json.is_object()) return bad("not a JSON object");
  if (!json.contains("model") || !json["model"].is_object()) return bad("missing \"model\"");
  const Json& model = json["model"];
  if (!model.contains("type") || model["type"] != "BPE") {
    return bad("model.type must be \"BPE\" (only byte-level BPE tokenizers are supported)");
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) return bad("missing model.vocab");
  auto impl = std::make_unique<Impl>();
  int32_t max_id = -1;
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > (1 << 24)) {
      return bad(absl::StrCat("model.vocab[\"", it.key(), "\"] must be a non-negative id"));
    }
    const int32_t id = it.value().get<int32_t>();
    impl->vocab[it.key()] = id;
    max_id = std::max(max_id, id);
  }
  if (!model.contains("merges") || !model["merges"].is_array()) return bad("missing model.merges");
  int rank = 0;
  for (const Json& merge : model["merges"]) {
    std::string key;
    if (merge.is_string()) {
      key = merge.get<std::string>();
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      key = absl::StrCat(merge[0].get<std::string>(), " ", merge[1].get<std::string>());
    } else {
      return bad(absl::StrCat("model.merges[", rank, "] must be \"a b\" or [\"a\", \"b\"]"));
    }
    impl->merge_rank.emplace(key, rank++);
  }
  impl->ignore_merges = model.value("ignore_merges", false);
  if (json.contains("added_tokens") && json["added_tokens"].is_array()) {
    for (const Json& t : json["added_tokens"]) {
      if (!t.contains("id") || !t.contains("content") || !t["content"].is_string()) {
        return bad("added_tokens entries need \"id\" and \"content\"");
      }
      const int32_t id = t["id"].get<int32_t>();
      impl->added.push_back({t["content"].get<std::string>(), id});
      max_id = std::max(max_id, id);
    }
    std::stable_sort(impl->added.begin(), impl->added.end(),
                     [](const Impl::Added& a, const Impl::Added& b) {
                       return a.content.size() > b.content.size();
                     });
  }
  impl->id_to_token.resize(max_id + 1);
  impl->is_added.assign(max_id + 1, false);
  for (const auto& [token, id] : impl->vocab) impl->id_to_token[id] = token;
  for (const Impl::Added& a : impl->added) {
    impl->id_to_token[a.id] = a.content;
    impl->is_added[a.id] = true;
  }
  // Pre-tokenizer: ByteLevel (GPT-2 regex unless use_regex is false), possibly after a Split.
  std::string pattern;
  std::vector<Json> steps;
  if (json.contains("pre_tokenizer") && json["pre_tokenizer"].is_object()) {
    const Json& pre = json["pre_tokenizer"];
    if (pre.value("type", "") == "Sequence" && pre.contains("pretokenizers")) {
      for (const Json& p : pre["pretokenizers"]) steps.push_back(p);
    } else {
      steps.push_back(pre);
    }
  }
  for (const Json& step : steps) {
    const std::string type = step.value("type", "");
    if (type == "Split") {
      if (!step.contains("pattern") || !step["pattern"].contains("Regex")) {
        return bad("Split pre-tokenizer needs pattern.Regex");
      }
      if (step.value("behavior", "Isolated") != "Isolated" || step.value("invert", false)) {
        return bad("only Split with behavior \"Isolated\" and invert false is supported");
      }
      pattern = step["pattern"]["Regex"].get<std::string>();
    } else if (type == "ByteLevel") {
      impl->add_prefix_space = step.value("add_prefix_space", false);
      if (step.value("use_regex", true)) pattern = kGpt2Pattern;
    } else {
      return bad(absl::StrCat("pre_tokenizer type ", ShownValue(type), " is not supported"));
    }
  }
  if (!pattern.empty()) {
    if (absl::Status s = impl->Compile(pattern, source); !s.ok()) return s;
  }
  for (const char* eos : {"<|endoftext|>", "<|end_of_text|>", "</s>"}) {
    for (const Impl::Added& a : impl->added) {
      if (a.content == eos && impl->eos < 0) impl->eos = a.id;
    }
  }
  return std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open tokenizer ", path));
  std::stringstream text;
  text << in.rdbuf();
  return FromJson(text.str(), path);
}

absl::StatusOr<std::vector<int32_t>> BpeTokenizer::Encode(absl::string_view text) const {
  std::vector<int32_t> ids;
  size_t segment = 0;
  for (size_t pos = 0; pos < text.size();) {
    const Impl::Added* hit = nullptr;
    for (const Impl::Added& a : impl_->added) {  // Longest first.
      if (!a.content.empty() && text.compare(pos, a.content.size(), a.content) == 0) {
        hit = &a;
        break;
      }
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    if (absl::Status s = impl_->EncodeSegment(text.substr(segment, pos - segment), &ids); !s.ok()) {
      return s;
    }
    ids.push_back(hit->id);
    pos += hit->content.size();
    segment = pos;
  }
  if (absl::Status s = impl_->EncodeSegment(text.substr(segment), &ids); !s.ok()) return s;
  return ids;
}

absl::StatusOr<std::string> BpeTokenizer::Decode(absl::Span<const int32_t> ids) const {
  const ByteMap& bytes = Bytes();
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= static_cast<int32_t>(impl_->id_to_token.size()) ||
        (impl_->id_to_token[id].empty() && !impl_->is_added[id])) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " is not in the vocabulary"));
    }
    const std::string& token = impl_->id_to_token[id];
    if (impl_->is_added[id]) {
      out += token;
      continue;
    }
    for (size_t i = 0; i < token.size();) {
      const int len = Utf8Length(static_cast<unsigned char>(token[i]));
      auto it = bytes.utf8_to_byte.find(token.substr(i, len));
      if (it != bytes.utf8_to_byte.end()) {
        out.push_back(static_cast<char>(it->second));
      } else {
        out.append(token, i, len);
      }
      i += len;
    }
  }
  return out;
}

int BpeTokenizer::vocab_size() const { return static_cast<int>(impl_->id_to_token.size()); }
int BpeTokenizer::eos_id() const { return impl_->eos; }

int BpeTokenizer::TokenId(absl::string_view token) const {
  auto it = impl_->vocab.find(token);
  if (it != impl_->vocab.end()) return it->second;
  for (const Impl::Added& a : impl_->added) {
    if (a.content == token) return a.id;
  }
  return -1;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path) {
  if (path.empty()) return std::unique_ptr<Tokenizer>(new ByteTokenizer());
  absl::StatusOr<std::unique_ptr<BpeTokenizer>> bpe = BpeTokenizer::FromFile(path);
  if (!bpe.ok()) return bpe.status();
  return std::unique_ptr<Tokenizer>(std::move(*bpe));
}

}  // namespace strata
