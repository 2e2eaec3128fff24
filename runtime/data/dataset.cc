// See dataset.h.
#include "runtime/data/dataset.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace strata {
namespace {

constexpr int32_t kLlmcMagic = 20240520;  // llm.c token files: 256 x int32 header.

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::Status AppendTokenFile(const std::string& path, const std::string& bytes, int width,
                             std::vector<int32_t>* out) {
  size_t begin = 0, count = 0;
  if (width == 2 && bytes.size() >= 1024) {
    int32_t header[3];
    std::memcpy(header, bytes.data(), sizeof(header));
    if (header[0] == kLlmcMagic) {
      begin = 1024;
      count = static_cast<size_t>(header[2]);
      if (begin + count * 2 != bytes.size()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": llm.c header says ", count,
                                                       " tokens but the file holds ",
                                                       (bytes.size() - begin) / 2));
      }
    }
  }
  if (begin == 0) {
    if (bytes.size() % width != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": ", bytes.size(), " bytes is not a whole number of ", width, "-byte tokens"));
    }
    count = bytes.size() / width;
  }
  const size_t first = out->size();
  out->resize(first + count);
  for (size_t i = 0; i < count; ++i) {
    if (width == 2) {
      uint16_t v;
      std::memcpy(&v, bytes.data() + begin + 2 * i, 2);
      (*out)[first + i] = v;
    } else {
      uint32_t v;
      std::memcpy(&v, bytes.data() + begin + 4 * i, 4);
      if (v > 0x7fffffffu) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": token ", i, " = ", v, " does not fit a token id"));
      }
      (*out)[first + i] = static_cast<int32_t>(v);
    }
  }
  return absl::OkStatus();
}

// Whether the tokenizer starts every text with its end-of-text id (OPT: BOS </s> is EOS).
bool StartsWithEos(const Tokenizer& tokenizer) {
  absl::StatusOr<std::vector<int32_t>> added = tokenizer.Encode("");
  return tokenizer.eos_id() >= 0 && added.ok() && !added->empty() &&
         added->front() == tokenizer.eos_id();
}

// Appends the document's ids and a separator. `starts_with_eos`: StartsWithEos(tokenizer).
absl::Status AppendDocument(absl::string_view text, const Tokenizer& tokenizer,
                            const std::string& where, std::vector<int32_t>* out,
                            bool starts_with_eos, bool add_special_tokens = true) {
  Tokenizer::EncodeOptions options;
  options.add_special_tokens = add_special_tokens;
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(text, options);
  if (!ids.ok())
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", ids.status().message()));
  out->insert(out->end(), ids->begin(), ids->end());
  // One end-of-text between documents: none when the document already ends with it, or when
  // the tokenizer put it at the start of every text (OPT's BOS is its EOS, </s>).
  const int eos = tokenizer.eos_id();
  if (eos < 0 || (!ids->empty() && ids->back() == eos)) return absl::OkStatus();
  if (add_special_tokens && starts_with_eos) return absl::OkStatus();
  out->push_back(eos);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CorpusFormat> ParseCorpusFormat(absl::string_view name) {
  if (name == "auto" || name.empty()) return CorpusFormat::kAuto;
  if (name == "u16") return CorpusFormat::kTokensU16;
  if (name == "u32") return CorpusFormat::kTokensU32;
  if (name == "jsonl") return CorpusFormat::kJsonl;
  if (name == "text") return CorpusFormat::kText;
  return absl::InvalidArgumentError(
      absl::StrCat("data format \"", name, "\" is not one of auto, u16, u32, jsonl, text"));
}

absl::StatusOr<TokenCorpus> TokenCorpus::Load(const std::vector<std::string>& paths,
                                              CorpusFormat format, const Tokenizer* tokenizer,
                                              const std::string& text_field, int vocab_size,
                                              const MessageRenderer& render_messages) {
  if (paths.empty()) return absl::InvalidArgumentError("no data paths given");
  TokenCorpus corpus;
  std::vector<int32_t>& tokens = corpus.tokens_;
  const std::string field = text_field.empty() ? "text" : text_field;
  for (const std::string& path : paths) {
    CorpusFormat f = format;
    if (f == CorpusFormat::kAuto) {
      f = absl::EndsWith(path, ".bin")     ? CorpusFormat::kTokensU16
          : absl::EndsWith(path, ".jsonl") ? CorpusFormat::kJsonl
                                           : CorpusFormat::kText;
    }
    absl::StatusOr<std::string> bytes = ReadFile(path);
    if (!bytes.ok()) return bytes.status();
    const size_t first = tokens.size();
    if (f == CorpusFormat::kTokensU16 || f == CorpusFormat::kTokensU32) {
      absl::Status s =
          AppendTokenFile(path, *bytes, f == CorpusFormat::kTokensU16 ? 2 : 4, &tokens);
      if (!s.ok()) return s;
    } else {
      if (tokenizer == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": text data needs a tokenizer"));
      }
      const bool starts_with_eos = StartsWithEos(*tokenizer);
      if (f == CorpusFormat::kText) {
        absl::Status s = AppendDocument(*bytes, *tokenizer, path, &tokens, starts_with_eos);
        if (!s.ok()) return s;
      } else {
        std::istringstream lines(*bytes);
        std::string line;
        for (int number = 1; std::getline(lines, line); ++number) {
          if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
          const std::string where = absl::StrCat(path, ":", number);
          nlohmann::json json = nlohmann::json::parse(line, nullptr, false);
          if (json.is_discarded() || !json.is_object()) {
            return absl::InvalidArgumentError(absl::StrCat(where, ": not a JSON object"));
          }
          if (json.contains(field) && json[field].is_array()) {
            if (!render_messages) {
              return absl::InvalidArgumentError(absl::StrCat(
                  where, ": field \"", field,
                  "\" holds a list of messages, and the tokenizer has no chat template (give "
                  "data.tokenizer_path as a model directory whose tokenizer_config.json has one)"));
            }
            absl::StatusOr<std::string> text = render_messages(json[field]);
            if (!text.ok()) {
              return absl::InvalidArgumentError(
                  absl::StrCat(where, ": field \"", field, "\": ", text.status().message()));
            }
            absl::Status s =
                AppendDocument(*text, *tokenizer, where, &tokens, starts_with_eos, false);
            if (!s.ok()) return s;
            continue;
          }
          if (!json.contains(field) || !json[field].is_string()) {
            return absl::InvalidArgumentError(absl::StrCat(where, ": missing field \"", field,
                                                           "\" (a string, or a list of messages)"));
          }
          absl::Status s = AppendDocument(json[field].get<std::string>(), *tokenizer, where,
                                          &tokens, starts_with_eos);
          if (!s.ok()) return s;
        }
      }
    }
    for (size_t i = first; i < tokens.size(); ++i) {
      if (tokens[i] >= vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": token ", i - first, " = ",
                                                       tokens[i], " is outside the model's ",
                                                       vocab_size, "-token vocabulary"));
      }
    }
  }
  return corpus;
}

double TokenCorpus::UnigramEntropy() const {
  if (tokens_.empty()) return 0.0;
  std::vector<int64_t> counts;
  for (int32_t t : tokens_) {
    if (t >= static_cast<int32_t>(counts.size())) counts.resize(t + 1);
    ++counts[t];
  }
  const double n = static_cast<double>(tokens_.size());
  double h = 0.0;
  for (int64_t c : counts) {
    if (c > 0) h -= (c / n) * std::log(c / n);
  }
  return h;
}

absl::StatusOr<BatchSampler> BatchSampler::Create(const TokenCorpus* corpus, Options options) {
  if (options.batch <= 0 || options.seq <= 0) {
    return absl::InvalidArgumentError("batch and seq must be positive");
  }
  if (options.world_size <= 0 || options.rank < 0 || options.rank >= options.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", options.rank, " is outside world size ", options.world_size));
  }
  const int64_t windows = corpus->size() > 0 ? (corpus->size() - 1) / options.seq : 0;
  const int64_t global = static_cast<int64_t>(options.batch) * options.world_size;
  if (windows < global) {
    return absl::InvalidArgumentError(
        absl::StrCat("the corpus has ", corpus->size(), " tokens: ", windows, " windows of ",
                     options.seq + 1, " tokens, fewer than one global batch of ", global));
  }
  BatchSampler sampler(corpus, options, windows);
  sampler.per_rank_ = windows / options.world_size;
  return sampler;
}

void BatchSampler::Shuffle() {
  order_.resize(windows_);
  for (int64_t i = 0; i < windows_; ++i) order_[i] = i;
  // splitmix64 stream seeded by (seed, epoch): the same order on every platform.
  uint64_t state = options_.seed ^ (0x9E3779B97F4A7C15ULL * (position_.epoch + 1));
  auto next = [&state] {
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  };
  for (int64_t i = windows_ - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(next() % static_cast<uint64_t>(i + 1));
    std::swap(order_[i], order_[j]);
  }
  order_epoch_ = position_.epoch;
}

void BatchSampler::set_position(const SamplerPosition& position) { position_ = position; }

void BatchSampler::Next(absl::Span<int32_t> tokens, absl::Span<int32_t> targets) {
  const int T = options_.seq;
  const absl::Span<const int32_t> data = corpus_->tokens();
  for (int b = 0; b < options_.batch; ++b) {
    if (position_.cursor >= per_rank_) {
      ++position_.epoch;
      position_.cursor = 0;
    }
    if (order_epoch_ != position_.epoch) Shuffle();
    const int64_t window = order_[position_.cursor * options_.world_size + options_.rank];
    ++position_.cursor;
    const int32_t* src = data.data() + window * T;
    std::memcpy(tokens.data() + static_cast<int64_t>(b) * T, src, sizeof(int32_t) * T);
    std::memcpy(targets.data() + static_cast<int64_t>(b) * T, src + 1, sizeof(int32_t) * T);
  }
}

absl::StatusOr<float> MeanLossOverBatches(
    const TokenCorpus* corpus, int batch, int seq, int max_batches,
    const std::function<absl::StatusOr<float>(absl::Span<const int32_t> tokens,
                                              absl::Span<const int32_t> targets)>& loss) {
  if (max_batches < 1) {
    return absl::InvalidArgumentError(absl::StrCat("eval_batches must be >= 1, not ", max_batches));
  }
  absl::StatusOr<BatchSampler> sampler =
      BatchSampler::Create(corpus, BatchSampler::Options{batch, seq, /*seed=*/0, 0, 1});
  if (!sampler.ok()) return sampler.status();
  std::vector<int32_t> x(static_cast<size_t>(batch) * seq), y(x.size());
  const int batches = static_cast<int>(std::min<int64_t>(max_batches, sampler->windows() / batch));
  double total = 0;
  for (int b = 0; b < batches; ++b) {
    sampler->Next(absl::MakeSpan(x), absl::MakeSpan(y));
    absl::StatusOr<float> value = loss(x, y);
    if (!value.ok()) return value.status();
    total += *value;
  }
  return static_cast<float>(total / batches);
}

}  // namespace strata
