// See tokenizer.h. The BPE algorithm on a parsed BpeModel; nothing here reads files.
#include "runtime/data/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <limits>
#include <mutex>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "runtime/base/shown_value.h"

namespace strata {

const char kGpt2PreTokenizerPattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

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

// Hugging Face's whitespace for added-token lstrip/rstrip (Rust char::is_whitespace) limited to
// ASCII, which is what real tokenizers' stripped tokens meet.
bool IsSpace(char c) { return absl::ascii_isspace(static_cast<unsigned char>(c)); }

}  // namespace

absl::StatusOr<std::vector<int32_t>> ByteTokenizer::Encode(absl::string_view text,
                                                           const EncodeOptions&) const {
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
  std::vector<BpeModel::AddedToken> added;               // Longest first.
  std::vector<bool> is_added;
  std::unique_ptr<TextNormalizer> normalizer;
  pcre2_code* regex = nullptr;
  bool add_prefix_space = false;
  bool ignore_merges = false;
  std::vector<int32_t> prefix_ids, suffix_ids;
  int bos = -1;
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
          return absl::InvalidArgumentError(absl::StrCat(
              "token ", ShownValue(s), " produced by the merges is not in the vocabulary"));
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
    if (text.empty()) return absl::OkStatus();
    std::string normalized;
    if (normalizer != nullptr) {
      absl::StatusOr<bool> changed = normalizer->Normalize(text, &normalized);
      if (!changed.ok()) return changed.status();
      if (*changed) text = normalized;
    }
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

  // The longest added token at `pos`, or null.
  const BpeModel::AddedToken* AddedAt(absl::string_view text, size_t pos) const {
    for (const BpeModel::AddedToken& a : added) {  // Longest first.
      if (text.compare(pos, a.content.size(), a.content) == 0) return &a;
    }
    return nullptr;
  }
};

BpeTokenizer::BpeTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpeTokenizer::~BpeTokenizer() = default;

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Create(BpeModel model) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(model.source, ": ", what));
  };
  auto impl = std::make_unique<Impl>();
  int64_t max_id = -1;
  for (const auto& [token, id] : model.vocab) {
    if (id < 0 || id > (1 << 24))
      return bad(absl::StrCat("vocabulary id ", id, " is out of range"));
    max_id = std::max<int64_t>(max_id, id);
  }
  impl->vocab = std::move(model.vocab);
  impl->merge_rank.reserve(model.merges.size());
  for (size_t rank = 0; rank < model.merges.size(); ++rank) {
    const auto& [left, right] = model.merges[rank];
    impl->merge_rank.emplace(absl::StrCat(left, " ", right), static_cast<int32_t>(rank));
  }
  for (BpeModel::AddedToken& a : model.added_tokens) {
    if (a.content.empty()) return bad(absl::StrCat("added token ", a.id, " is empty"));
    if (a.id < 0 || a.id > (1 << 24)) {
      return bad(absl::StrCat("added token id ", a.id, " is out of range"));
    }
    max_id = std::max<int64_t>(max_id, a.id);
    impl->added.push_back(std::move(a));
  }
  std::stable_sort(impl->added.begin(), impl->added.end(),
                   [](const BpeModel::AddedToken& a, const BpeModel::AddedToken& b) {
                     return a.content.size() > b.content.size();
                   });
  impl->id_to_token.resize(max_id + 1);
  impl->is_added.assign(max_id + 1, false);
  for (const auto& [token, id] : impl->vocab) impl->id_to_token[id] = token;
  for (const BpeModel::AddedToken& a : impl->added) {
    impl->id_to_token[a.id] = a.content;
    impl->is_added[a.id] = true;
  }
  for (const std::vector<int32_t>* ids : {&model.prefix_ids, &model.suffix_ids}) {
    for (int32_t id : *ids) {
      if (id < 0 || id > max_id) {
        return bad(absl::StrCat("post-processor token id ", id, " is not in the vocabulary"));
      }
    }
  }
  for (int32_t id : {model.bos_id, model.eos_id}) {
    if (id < -1 || id > max_id) {
      return bad(absl::StrCat("special token id ", id, " is not in the vocabulary"));
    }
  }
  impl->normalizer = std::move(model.normalizer);
  impl->add_prefix_space = model.add_prefix_space;
  impl->ignore_merges = model.ignore_merges;
  impl->prefix_ids = std::move(model.prefix_ids);
  impl->suffix_ids = std::move(model.suffix_ids);
  impl->bos = model.bos_id;
  impl->eos = model.eos_id;
  if (!model.pattern.empty()) {
    if (absl::Status s = impl->Compile(model.pattern, model.source); !s.ok()) return s;
  }
  if (impl->eos < 0) {
    for (const char* eos : {"<|endoftext|>", "<|end_of_text|>", "</s>"}) {
      for (const BpeModel::AddedToken& a : impl->added) {
        if (a.content == eos && impl->eos < 0) impl->eos = a.id;
      }
    }
  }
  return std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(impl)));
}

absl::StatusOr<std::vector<int32_t>> BpeTokenizer::Encode(absl::string_view text,
                                                          const EncodeOptions& options) const {
  std::vector<int32_t> ids;
  if (options.add_special_tokens) ids = impl_->prefix_ids;
  size_t segment = 0;  // Start of the text not yet encoded.
  for (size_t pos = 0; pos < text.size();) {
    const BpeModel::AddedToken* hit = impl_->AddedAt(text, pos);
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    size_t end = pos;  // The segment before the token, less what the token absorbs.
    if (hit->lstrip) {
      while (end > segment && IsSpace(text[end - 1])) --end;
    }
    if (absl::Status s = impl_->EncodeSegment(text.substr(segment, end - segment), &ids); !s.ok()) {
      return s;
    }
    ids.push_back(hit->id);
    pos += hit->content.size();
    if (hit->rstrip) {
      while (pos < text.size() && IsSpace(text[pos])) ++pos;
    }
    segment = pos;
  }
  if (absl::Status s = impl_->EncodeSegment(text.substr(segment), &ids); !s.ok()) return s;
  if (options.add_special_tokens) {
    ids.insert(ids.end(), impl_->suffix_ids.begin(), impl_->suffix_ids.end());
  }
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
int BpeTokenizer::bos_id() const { return impl_->bos; }

int BpeTokenizer::TokenId(absl::string_view token) const {
  for (const BpeModel::AddedToken& a : impl_->added) {
    if (a.content == token) return a.id;
  }
  auto it = impl_->vocab.find(token);
  if (it != impl_->vocab.end()) return it->second;
  return -1;
}

std::string BpeTokenizer::TokenString(int32_t id) const {
  if (id < 0 || id >= static_cast<int32_t>(impl_->id_to_token.size())) return "";
  return impl_->id_to_token[id];
}

}  // namespace strata
