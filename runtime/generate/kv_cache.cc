// See kv_cache.h.
#include "runtime/generate/kv_cache.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace strata {

KvCache::KvCache(const ModelConfig& config)
    : layers_(config.n_layer),
      max_seq_len_(config.max_seq_len),
      kv_dim_(config.kv_dim()),
      q_dim_(config.q_dim()),
      qkv_dim_(config.qkv_dim()) {}

absl::Status KvCache::Reset(Transformer::BlockAdapters* inner, int stream, int tokens) {
  const int prefix = inner != nullptr ? inner->PrefixLength() : 0;
  if (tokens < 1 || prefix + tokens > max_seq_len_) {
    return absl::InvalidArgumentError(
        absl::StrCat("a cache of ", tokens, " tokens",
                     prefix > 0 ? absl::StrCat(" after a prefix of ", prefix) : "",
                     " does not fit the model's maximum sequence length ", max_seq_len_));
  }
  inner_ = inner;
  inner_prefix_ = prefix;
  tokens_ = 0;
  capacity_ = tokens;
  rows_ = static_cast<int64_t>(prefix) + tokens;
  const int64_t floats = 2 * layers_ * rows_ * kv_dim_;
  if (buffer_.size() < floats) buffer_.Resize(floats);
  for (int l = 0; l < layers_ && prefix > 0; ++l) {
    const PrefixRows rows = inner->Prefix(l, stream);
    for (int r = 0; r < prefix; ++r) {
      std::memcpy(Keys(l) + r * kv_dim_, rows.keys + r * rows.ld, sizeof(float) * kv_dim_);
      std::memcpy(Values(l) + r * kv_dim_, rows.values + r * rows.ld, sizeof(float) * kv_dim_);
    }
  }
  return absl::OkStatus();
}

absl::Status KvCache::Append(int layer, const float* rows, int count) {
  if (layer < 0 || layer >= layers_) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer ", layer, " is not in [0, ", layers_, ")"));
  }
  if (count < 0 || tokens_ + count > capacity_) {
    return absl::OutOfRangeError(absl::StrCat("appending ", count, " rows to a cache holding ",
                                              tokens_, " of ", capacity_, " tokens"));
  }
  const int64_t first = static_cast<int64_t>(inner_prefix_) + tokens_;
  for (int t = 0; t < count; ++t) {
    const float* row = rows + t * qkv_dim_;
    std::memcpy(Keys(layer) + (first + t) * kv_dim_, row + q_dim_, sizeof(float) * kv_dim_);
    std::memcpy(Values(layer) + (first + t) * kv_dim_, row + q_dim_ + kv_dim_,
                sizeof(float) * kv_dim_);
  }
  return absl::OkStatus();
}

absl::Status KvCache::Commit(int count) {
  if (count < 0 || tokens_ + count > capacity_) {
    return absl::OutOfRangeError(absl::StrCat("committing ", count, " rows to a cache holding ",
                                              tokens_, " of ", capacity_, " tokens"));
  }
  tokens_ += count;
  return absl::OkStatus();
}

void KvCache::Forward(int layer, AdaptedSite site, const float* x, int64_t N, float* out,
                      int stream) {
  if (inner_ != nullptr) inner_->Forward(layer, site, x, N, out, stream);
}

void KvCache::Backward(int layer, AdaptedSite site, const float* x, const float* dout, int64_t N,
                       float* dx) {
  if (inner_ != nullptr) inner_->Backward(layer, site, x, dout, N, dx);
}

Transformer::BlockAdapters::PrefixRows KvCache::Prefix(int layer, int /*stream*/) {
  return {Keys(layer), Values(layer), kv_dim_};
}

}  // namespace strata
