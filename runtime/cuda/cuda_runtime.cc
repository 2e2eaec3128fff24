// See cuda_runtime.h. STRATA_WITH_CUDA is defined only in --config=cuda builds, where the
// nvcc-compiled objects of vector_add_kernel.cu are linked in.
#include "runtime/cuda/cuda_runtime.h"

#include "absl/strings/str_cat.h"

#ifdef STRATA_WITH_CUDA
#include "runtime/cuda/vector_add_kernel.h"
#endif

namespace strata {
namespace {

[[maybe_unused]] absl::Status NotBuilt() {
  return absl::UnavailableError(
      "this binary was built without CUDA; rebuild with `bazel build --config=cuda`");
}

}  // namespace

bool CudaBuilt() {
#ifdef STRATA_WITH_CUDA
  return true;
#else
  return false;
#endif
}

absl::Status CudaStatus(int code, const char* expr, const char* file, int line) {
  if (code == 0) return absl::OkStatus();
#ifdef STRATA_WITH_CUDA
  const char* text = cuda_internal::ErrorText(code);
#else
  const char* text = "CUDA error";
#endif
  return absl::InternalError(
      absl::StrCat(expr, " failed at ", file, ":", line, ": ", text, " (code ", code, ")"));
}

absl::StatusOr<int> CudaDeviceCount() {
#ifdef STRATA_WITH_CUDA
  int count = 0;
  const int code = cuda_internal::GetDeviceCount(&count);
  if (code != 0) {
    return absl::UnavailableError(
        CudaStatus(code, "cudaGetDeviceCount(&count)", __FILE__, __LINE__).message());
  }
  return count;
#else
  return NotBuilt();
#endif
}

std::vector<CudaDeviceInfo> CudaDevices() {
  std::vector<CudaDeviceInfo> devices;
#ifdef STRATA_WITH_CUDA
  absl::StatusOr<int> count = CudaDeviceCount();
  if (!count.ok()) return devices;
  for (int i = 0; i < *count; ++i) {
    char name[256] = {0};
    char hex[33] = {0};
    int64_t memory = 0;
    if (cuda_internal::GetDeviceInfo(i, name, sizeof(name), &memory, hex) != 0) continue;
    const std::string h(hex);
    devices.push_back({i, name, memory,
                       absl::StrCat("GPU-", h.substr(0, 8), "-", h.substr(8, 4), "-",
                                    h.substr(12, 4), "-", h.substr(16, 4), "-", h.substr(20))});
  }
#endif
  return devices;
}

absl::Status CudaHostRegister(void* data, int64_t bytes) {
#ifdef STRATA_WITH_CUDA
  return CudaStatus(cuda_internal::HostRegister(data, bytes), "cudaHostRegister", __FILE__,
                    __LINE__);
#else
  (void)data;
  (void)bytes;
  return NotBuilt();
#endif
}

absl::Status CudaHostUnregister(void* data) {
#ifdef STRATA_WITH_CUDA
  return CudaStatus(cuda_internal::HostUnregister(data), "cudaHostUnregister", __FILE__, __LINE__);
#else
  (void)data;
  return NotBuilt();
#endif
}

absl::Status CudaVectorAdd(absl::Span<float> out, absl::Span<const float> a,
                           absl::Span<const float> b) {
  if (a.size() != out.size() || b.size() != out.size()) {
    return absl::InvalidArgumentError(absl::StrCat("CudaVectorAdd: sizes differ: out ", out.size(),
                                                   ", a ", a.size(), ", b ", b.size()));
  }
#ifdef STRATA_WITH_CUDA
  const char* failed_expr = "";
  const int code = cuda_internal::VectorAddHost(out.data(), a.data(), b.data(),
                                                static_cast<int64_t>(out.size()), &failed_expr);
  return CudaStatus(code, failed_expr, "runtime/cuda/vector_add_kernel.cu", 0);
#else
  return NotBuilt();
#endif
}

}  // namespace strata
