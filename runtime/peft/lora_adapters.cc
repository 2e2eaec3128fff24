// See lora_adapters.h.
#include "runtime/peft/lora_adapters.h"

#include <cmath>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "runtime/base/shown_value.h"
#include "runtime/base/splitmix.h"
#include "runtime/kernels/matmul.h"

namespace strata {
namespace {

namespace k = kernels;

constexpr int kSites = 4;
constexpr char kPrefix[] = "base_model.model.";

// Whether PEFT would target `module` (a full module path) for `target`: the whole path, or its
// trailing components after a '.'.
bool Matches(absl::string_view module, absl::string_view target) {
  return module == target || absl::EndsWith(module, absl::StrCat(".", target));
}

// The site a block tensor at `rel` (elements from the block start) belongs to, with the site's
// start, input width and full output width; false for tensors outside the four matmuls.
bool SiteOf(const ParamLayout& layout, int64_t rel, AdaptedSite* site, int64_t* start, int64_t* in,
            int64_t* out_width) {
  const ModelConfig& c = layout.config();
  const int64_t C = c.d_model, F = c.d_ff, QD = c.q_dim(), QKV = c.qkv_dim(), FF1 = c.mlp_in_dim();
  const struct {
    BlockPart part;
    AdaptedSite site;
    int64_t in, out;
  } sites[] = {{BlockPart::kQkvW, AdaptedSite::kQkv, C, QKV},
               {BlockPart::kOW, AdaptedSite::kO, QD, C},
               {BlockPart::kUpW, AdaptedSite::kUp, C, FF1},
               {BlockPart::kDownW, AdaptedSite::kDown, F, C}};
  for (const auto& s : sites) {
    const int64_t begin = layout.PartOffset(s.part);
    if (rel >= begin && rel < begin + s.in * s.out) {
      *site = s.site;
      *start = begin;
      *in = s.in;
      *out_width = s.out;
      return true;
    }
  }
  return false;
}

}  // namespace

std::string LoraAdapters::Describe() const {
  return absl::StrFormat("LoRA r=%d alpha=%g on %d layers: %d adapter parameters", config_.r,
                         config_.alpha, static_cast<int>(adapters_.size()), NumElements());
}

absl::StatusOr<std::unique_ptr<LoraAdapters>> LoraAdapters::Create(const ParamLayout& base,
                                                                   const LoraConfig& config) {
  if (config.r <= 0 || !(config.alpha > 0)) {
    return absl::InvalidArgumentError("LoRA r and alpha must be positive");
  }
  if (config.target_modules.empty()) {
    return absl::InvalidArgumentError("LoRA target_modules is empty");
  }
  auto lora = std::unique_ptr<LoraAdapters>(new LoraAdapters(base, config));
  const bool all_linear =
      config.target_modules.size() == 1 && config.target_modules[0] == "all-linear";
  std::vector<bool> used(config.target_modules.size(), false);
  const int L = base.config().n_layer;
  lora->by_site_.resize(static_cast<size_t>(L) * kSites);
  for (int l = 0; l < L; ++l) {
    for (int s = 0; s < base.SlotsPerBlock(); ++s) {
      const TensorInfo& t = base.BlockTensor(l, s);
      if (t.shape.size() != 2 || !absl::EndsWith(t.name, ".weight")) continue;
      Adapter a;
      int64_t start = 0;
      if (!SiteOf(base, t.offset - base.BlockBegin(l), &a.site, &start, &a.in, &a.out_width)) {
        continue;
      }
      const std::string module = t.name.substr(0, t.name.size() - 7);
      bool wanted = all_linear;
      for (size_t i = 0; i < config.target_modules.size() && !all_linear; ++i) {
        if (Matches(module, config.target_modules[i])) {
          wanted = true;
          used[i] = true;
        }
      }
      if (!wanted) continue;
      a.layer = l;
      a.out_begin = (t.offset - base.BlockBegin(l) - start) / a.in;
      a.out_rows = t.numel / a.in;
      a.base_offset = t.offset;
      a.a = lora->AddTensor(absl::StrCat(kPrefix, module, ".lora_A.weight"), {config.r, a.in}, l);
      a.b = lora->AddTensor(absl::StrCat(kPrefix, module, ".lora_B.weight"), {a.out_rows, config.r},
                            l);
      lora->by_site_[static_cast<size_t>(l) * kSites + static_cast<int>(a.site)].push_back(
          static_cast<int>(lora->adapters_.size()));
      lora->adapters_.push_back(a);
    }
  }
  for (size_t i = 0; i < used.size() && !all_linear; ++i) {
    if (!used[i]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "LoRA target_modules: ", ShownValue(config.target_modules[i]),
          " matches no linear layer of this ", ModelFamilyName(base.config().family), " model"));
    }
  }
  if (lora->adapters_.empty()) return absl::InvalidArgumentError("LoRA adapts no layer");
  lora->Allocate();
  return lora;
}

void LoraAdapters::Initialize(uint64_t seed) {
  for (const Adapter& a : adapters_) {
    const TensorInfo& ta = tensors()[a.a];
    uint64_t state = TensorStream(seed, ta.id);
    const double bound = 1.0 / std::sqrt(static_cast<double>(a.in));
    float* A = weights().data() + ta.offset;
    for (int64_t i = 0; i < ta.numel; ++i) {
      const double u = UniformOpen01(state);
      A[i] = static_cast<float>((2.0 * u - 1.0) * bound);
    }
    const TensorInfo& tb = tensors()[a.b];
    std::memset(weights().data() + tb.offset, 0, sizeof(float) * tb.numel);
  }
}

float* LoraAdapters::Scratch(int slot, int64_t floats) {
  if (scratch_[slot].size() < floats) scratch_[slot].Resize(floats);
  return scratch_[slot].data();
}

void LoraAdapters::Forward(int layer, AdaptedSite site, const float* x, int64_t N, float* out,
                           int stream) {
  const std::vector<int>& list =
      by_site_[static_cast<size_t>(layer) * kSites + static_cast<int>(site)];
  if (list.empty()) return;
  const int64_t r = config_.r;
  const float scale = config_.scale();
  float* t = Scratch(stream, N * r);
  const float* weights = StreamWeights(stream);
  for (int index : list) {
    const Adapter& a = adapters_[index];
    const float* A = weights + tensors()[a.a].offset;
    const float* B = weights + tensors()[a.b].offset;
    // t (N, r) = x A^T; out[:, rows] += scale * t B^T.
    k::sgemm(false, true, N, r, a.in, 1.0f, x, a.in, A, a.in, 0.0f, t, r);
    k::sgemm(false, true, N, a.out_rows, r, scale, t, r, B, r, 1.0f, out + a.out_begin,
             a.out_width);
  }
}

void LoraAdapters::Backward(int layer, AdaptedSite site, const float* x, const float* dout,
                            int64_t N, float* dx) {
  const std::vector<int>& list =
      by_site_[static_cast<size_t>(layer) * kSites + static_cast<int>(site)];
  if (list.empty()) return;
  const int64_t r = config_.r;
  const float scale = config_.scale();
  float* g = grads().data();
  float* t = Scratch(0, N * r);
  float* dt = Scratch(2, N * r);
  for (int index : list) {
    const Adapter& a = adapters_[index];
    const float* A = weights().data() + tensors()[a.a].offset;
    const float* B = weights().data() + tensors()[a.b].offset;
    float* dA = g + tensors()[a.a].offset;
    float* dB = g + tensors()[a.b].offset;
    const float* dy = dout + a.out_begin;  // (N, out_rows) with leading dimension out_width.
    k::sgemm(false, true, N, r, a.in, 1.0f, x, a.in, A, a.in, 0.0f, t, r);  // Recomputed.
    // dB += scale dy^T t; dt = scale dy B; dA += dt^T x; dx += dt A.
    k::sgemm(true, false, a.out_rows, r, N, scale, dy, a.out_width, t, r, 1.0f, dB, r);
    k::sgemm(false, false, N, r, a.out_rows, scale, dy, a.out_width, B, r, 0.0f, dt, r);
    k::sgemm(true, false, r, a.in, N, 1.0f, dt, r, x, a.in, 1.0f, dA, a.in);
    k::sgemm(false, false, N, a.in, r, 1.0f, dt, r, A, a.in, 1.0f, dx, a.in);
  }
}

void LoraAdapters::MergeInto(Transformer& model) const {
  const float scale = config_.scale();
  float* params = model.params().data();
  for (const Adapter& a : adapters_) {
    const float* A = weights().data() + tensors()[a.a].offset;
    const float* B = weights().data() + tensors()[a.b].offset;
    // W (out_rows, in) += scale B A.
    k::sgemm(false, false, a.out_rows, a.in, config_.r, scale, B, config_.r, A, a.in, 1.0f,
             params + a.base_offset, a.in);
  }
}

}  // namespace strata
