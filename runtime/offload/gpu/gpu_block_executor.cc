// See gpu_block_executor.h. In builds without CUDA only the stub at the end is compiled.
#include "runtime/offload/gpu/gpu_block_executor.h"

#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/base/status_macros.h"
#include "runtime/model/rope_frequencies.h"

#ifdef STRATA_WITH_CUDA
#include "runtime/offload/gpu/gpu_kernels.h"
#endif

namespace strata {

#ifdef STRATA_WITH_CUDA
namespace {

#define STRATA_GPU(expr)                                                                         \
  do {                                                                                           \
    if (const int code_ = (expr); code_ != 0) {                                                  \
      return absl::InternalError(absl::StrCat(#expr, " failed: ", gpu::ErrorString(code_), " (", \
                                              code_, ") at ", __FILE__, ":", __LINE__));         \
    }                                                                                            \
  } while (0)

class GpuBlockExecutor : public zo::BlockExecutor {
 public:
  GpuBlockExecutor(const ParamLayout& layout, GpuBlockExecutorOptions options)
      : layout_(layout), options_(std::move(options)) {}

  ~GpuBlockExecutor() override {
    if (compute_ != nullptr) gpu::StreamSynchronize(compute_);
    if (copy_ != nullptr) gpu::StreamSynchronize(copy_);
    for (float* p : {theta_[0], theta_[1], plus_, minus_, inv_freq_}) {
      if (p != nullptr) gpu::Free(p);
    }
    FreeActivations();
    for (gpu::Event e :
         {uploaded_[0], uploaded_[1], computed_[0], computed_[1], updated_, downloaded_}) {
      if (e != nullptr) gpu::EventDestroy(e);
    }
    if (blas_ != nullptr) gpu::BlasDestroy(blas_);
    if (compute_ != nullptr) gpu::StreamDestroy(compute_);
    if (copy_ != nullptr) gpu::StreamDestroy(copy_);
  }

  absl::Status Init() {
    const ModelConfig& c = layout_.config();
    if (options_.thresholds.size() != layout_.tensors().size()) {
      return absl::InvalidArgumentError("thresholds: one per tensor is needed");
    }
    STRATA_GPU(gpu::SetDevice(options_.device));
    STRATA_GPU(gpu::StreamCreate(&compute_));
    STRATA_GPU(gpu::StreamCreate(&copy_));
    STRATA_GPU(gpu::BlasCreate(&blas_, compute_));
    for (gpu::Event* e :
         {&uploaded_[0], &uploaded_[1], &computed_[0], &computed_[1], &updated_, &downloaded_}) {
      STRATA_GPU(gpu::EventCreate(e));
    }
    const int64_t block = layout_.BlockElements();
    for (float** p : {&theta_[0], &theta_[1], &plus_, &minus_}) STRATA_GPU(gpu::Malloc(p, block));
    // Nothing is in flight yet: let the first uploads' waits pass.
    STRATA_GPU(gpu::EventRecord(computed_[0], compute_));
    STRATA_GPU(gpu::EventRecord(computed_[1], compute_));
    for (int s = 0; s < layout_.SlotsPerBlock(); ++s) {
      slot_offset_.push_back(layout_.BlockTensor(0, s).offset - layout_.BlockBegin(0));
    }
    if (!c.arch().learned_positions) {
      const std::vector<float> inv_freq = RopeInvFreq(c);  // As the CPU kernels use them.
      const int half = static_cast<int>(inv_freq.size());
      STRATA_GPU(gpu::Malloc(&inv_freq_, half));
      STRATA_GPU(gpu::CopyToDevice(inv_freq_, inv_freq.data(), half, compute_));
      STRATA_GPU(gpu::StreamSynchronize(compute_));
    }
    return absl::OkStatus();
  }

  absl::Status Begin(const float* plus, const float* minus, int B, int T) override {
    if (B != B_ || T != T_) {
      STRATA_GPU(gpu::StreamSynchronize(compute_));
      FreeActivations();
      B_ = B;
      T_ = T;
      for (Acts& a : acts_) STRATA_RETURN_IF_ERROR(Allocate(a));
    }
    second_ = minus != nullptr;
    const int64_t nc = N() * layout_.config().d_model;
    STRATA_GPU(gpu::CopyToDevice(acts_[0].x, plus, nc, compute_));
    if (second_) STRATA_GPU(gpu::CopyToDevice(acts_[1].x, minus, nc, compute_));
    return absl::OkStatus();
  }

  absl::Status Block(int layer, float* weights, const zo::SgdUpdate* update,
                     const zo::NoiseKey& key) override {
    const int buf = parity_;
    parity_ ^= 1;
    float* theta = theta_[buf];
    const int64_t block = layout_.BlockElements();
    const bool rademacher = key.distribution == zo::Distribution::kRademacher;
    // Upload once the previous user of this buffer (two blocks ago) has finished computing.
    STRATA_GPU(gpu::StreamWaitEvent(copy_, computed_[buf]));
    STRATA_GPU(gpu::CopyToDevice(theta, weights, block, copy_));
    STRATA_GPU(gpu::EventRecord(uploaded_[buf], copy_));
    STRATA_GPU(gpu::StreamWaitEvent(compute_, uploaded_[buf]));
    if (update != nullptr) {
      const bool update_rademacher = update->distribution == zo::Distribution::kRademacher;
      for (int s = 0; s < layout_.SlotsPerBlock(); ++s) {
        const int id = layout_.BlockTensorId(layer, s);
        const TensorInfo& t = layout_.tensor(id);
        const float decay = RoleTakesWeightDecay(t.role) ? update->decay : 0.0f;
        for (size_t i = 0; i < update->coefs.size(); ++i) {
          STRATA_GPU(gpu::ZoUpdateSgd(compute_, theta + slot_offset_[s], t.numel,
                                      static_cast<uint32_t>(id), update->seed,
                                      static_cast<uint32_t>(i), update_rademacher, update->coefs[i],
                                      i == 0 ? decay : 0.0f, options_.thresholds[id]));
        }
      }
      // The updated block goes back to the host slot while the forwards run.
      STRATA_GPU(gpu::EventRecord(updated_, compute_));
      STRATA_GPU(gpu::StreamWaitEvent(copy_, updated_));
      STRATA_GPU(gpu::CopyToHost(weights, theta, block, copy_));
      STRATA_GPU(gpu::EventRecord(downloaded_, copy_));
    }
    for (int s = 0; s < layout_.SlotsPerBlock(); ++s) {
      const int id = layout_.BlockTensorId(layer, s);
      const int64_t rel = slot_offset_[s];
      STRATA_GPU(gpu::ZoPerturb(compute_, plus_ + rel, options_.one_sided ? nullptr : minus_ + rel,
                                theta + rel, layout_.tensor(id).numel, static_cast<uint32_t>(id),
                                key.seed, key.stream, rademacher, options_.eps,
                                options_.thresholds[id]));
    }
    STRATA_RETURN_IF_ERROR(Forward(layer, acts_[0], plus_));
    if (second_) {
      STRATA_RETURN_IF_ERROR(Forward(layer, acts_[1], options_.one_sided ? theta : minus_));
    }
    STRATA_GPU(gpu::EventRecord(computed_[buf], compute_));
    // The host slot may be reused (or written to NVMe) once its data is on the device and, after
    // an update, back from it.
    STRATA_GPU(gpu::EventSynchronize(update != nullptr ? downloaded_ : uploaded_[buf]));
    return absl::OkStatus();
  }

  absl::Status End(float* plus, float* minus) override {
    const int64_t nc = N() * layout_.config().d_model;
    STRATA_GPU(gpu::CopyToHost(plus, acts_[0].x, nc, compute_));
    if (second_ && minus != nullptr) STRATA_GPU(gpu::CopyToHost(minus, acts_[1].x, nc, compute_));
    STRATA_GPU(gpu::StreamSynchronize(compute_));
    return absl::OkStatus();
  }

 private:
  // One forward stream's device activations.
  struct Acts {
    float *x = nullptr, *ln = nullptr, *qkv_raw = nullptr, *qkv = nullptr, *atty = nullptr,
          *tmp = nullptr, *fc = nullptr, *fc_act = nullptr;
  };

  int64_t N() const { return static_cast<int64_t>(B_) * T_; }

  absl::Status Allocate(Acts& a) {
    const ModelConfig& c = layout_.config();
    const int64_t n = N(), C = c.d_model, F = c.d_ff;
    const int64_t qkv = c.qkv_dim();
    const int64_t ff1 = c.mlp_in_dim();
    for (auto [p, floats] : {std::pair{&a.x, n * C},
                             {&a.ln, n * C},
                             {&a.qkv_raw, c.arch().qk_norm ? n * qkv : 1},
                             {&a.qkv, n * qkv},
                             {&a.atty, n * c.q_dim()},
                             {&a.tmp, n * C},
                             {&a.fc, n * ff1},
                             {&a.fc_act, n * F}}) {
      STRATA_GPU(gpu::Malloc(p, floats));
    }
    return absl::OkStatus();
  }

  void FreeActivations() {
    for (Acts& a : acts_) {
      for (float* p : {a.x, a.ln, a.qkv_raw, a.qkv, a.atty, a.tmp, a.fc, a.fc_act}) {
        if (p != nullptr) gpu::Free(p);
      }
      a = Acts();
    }
  }

  absl::Status Norm(const Architecture& arch, float* out, const float* x, const float* w,
                    const float* b, int C, float eps) {
    if (arch.layer_norm) {
      STRATA_GPU(gpu::LayerNorm(compute_, out, x, w, b, N(), C, eps));
    } else {
      STRATA_GPU(gpu::RmsNorm(compute_, out, x, w, N(), C, eps));
    }
    return absl::OkStatus();
  }

  // BlockForwardInfer's sequence on the device, weights `w` in block layout.
  absl::Status Forward(int layer, const Acts& a, const float* w) {
    const ModelConfig& c = layout_.config();
    const Architecture arch = c.arch();
    const int64_t n = N();
    const int C = c.d_model, F = c.d_ff, HD = c.head_dim(), QD = c.q_dim();
    const int QKV = c.qkv_dim();
    const int FF1 = c.mlp_in_dim();
    auto at = [&](BlockPart part) -> const float* {
      const int64_t offset = layout_.PartOffset(part);
      return offset < 0 ? nullptr : w + offset;
    };
    using P = BlockPart;
    const float* attn_in = a.x;
    if (arch.pre_norm) {
      STRATA_RETURN_IF_ERROR(Norm(arch, a.ln, a.x, at(P::kNorm1W), at(P::kNorm1B), C, c.norm_eps));
      attn_in = a.ln;
    }
    float* projected = arch.qk_norm ? a.qkv_raw : a.qkv;
    STRATA_GPU(
        gpu::Linear(blas_, compute_, projected, attn_in, at(P::kQkvW), at(P::kQkvB), n, C, QKV));
    if (arch.qk_norm) {
      STRATA_GPU(gpu::HeadRmsNorm(compute_, a.qkv, a.qkv_raw, at(P::kQNorm), at(P::kKNorm), n,
                                  c.n_head, c.n_kv_head, HD, c.norm_eps));
    }
    if (!arch.learned_positions) {
      STRATA_GPU(gpu::Rope(compute_, a.qkv, B_, T_, c.n_head, c.n_kv_head, HD, inv_freq_,
                           RopeAttentionScale(c)));
    }
    STRATA_GPU(gpu::Attention(compute_, a.atty, a.qkv, B_, T_, c.n_head, c.n_kv_head, HD,
                              c.WindowOfLayer(layer)));
    STRATA_GPU(gpu::Linear(blas_, compute_, a.tmp, a.atty, at(P::kOW), at(P::kOB), n, QD, C));
    STRATA_GPU(gpu::AddInPlace(compute_, a.x, a.tmp, n * C));
    if (!arch.pre_norm) {
      STRATA_RETURN_IF_ERROR(Norm(arch, a.x, a.x, at(P::kNorm1W), at(P::kNorm1B), C, c.norm_eps));
    }
    const float* mlp_in = a.x;
    if (arch.pre_norm) {
      STRATA_RETURN_IF_ERROR(Norm(arch, a.ln, a.x, at(P::kNorm2W), at(P::kNorm2B), C, c.norm_eps));
      mlp_in = a.ln;
    }
    STRATA_GPU(gpu::Linear(blas_, compute_, a.fc, mlp_in, at(P::kUpW), at(P::kUpB), n, C, FF1));
    switch (arch.mlp) {
      case MlpKind::kGeluTanh:
        STRATA_GPU(gpu::Gelu(compute_, a.fc_act, a.fc, n * F));
        break;
      case MlpKind::kRelu:
        STRATA_GPU(gpu::Relu(compute_, a.fc_act, a.fc, n * F));
        break;
      case MlpKind::kSwiGlu:
        STRATA_GPU(gpu::Swiglu(compute_, a.fc_act, a.fc, n, F));
        break;
    }
    STRATA_GPU(
        gpu::Linear(blas_, compute_, a.tmp, a.fc_act, at(P::kDownW), at(P::kDownB), n, F, C));
    STRATA_GPU(gpu::AddInPlace(compute_, a.x, a.tmp, n * C));
    if (!arch.pre_norm) {
      STRATA_RETURN_IF_ERROR(Norm(arch, a.x, a.x, at(P::kNorm2W), at(P::kNorm2B), C, c.norm_eps));
    }
    return absl::OkStatus();
  }

  const ParamLayout& layout_;
  const GpuBlockExecutorOptions options_;
  std::vector<int64_t> slot_offset_;
  gpu::Stream compute_ = nullptr, copy_ = nullptr;
  gpu::Blas blas_ = nullptr;
  gpu::Event uploaded_[2] = {}, computed_[2] = {}, updated_ = nullptr, downloaded_ = nullptr;
  float* theta_[2] = {};
  float *plus_ = nullptr, *minus_ = nullptr, *inv_freq_ = nullptr;
  Acts acts_[2];
  int B_ = 0, T_ = 0;
  bool second_ = false;
  int parity_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<zo::BlockExecutor>> CreateGpuBlockExecutor(
    const ParamLayout& layout, GpuBlockExecutorOptions options) {
  auto executor = std::make_unique<GpuBlockExecutor>(layout, std::move(options));
  if (absl::Status status = executor->Init(); !status.ok()) return status;
  return executor;
}

#else  // !STRATA_WITH_CUDA

absl::StatusOr<std::unique_ptr<zo::BlockExecutor>> CreateGpuBlockExecutor(
    const ParamLayout& /*layout*/, GpuBlockExecutorOptions /*options*/) {
  return absl::UnavailableError(
      "the GPU stage needs a build with CUDA (bazel build --config=cuda)");
}

#endif  // STRATA_WITH_CUDA

}  // namespace strata
