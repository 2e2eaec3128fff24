// Run-time instruction-set selection for CPU kernels. A function marked STRATA_CPU_CLONES is
// compiled three times (AVX-512, AVX2+FMA, baseline x86-64); the dynamic loader picks the best
// version for the running CPU once (GCC target_clones, an ifunc). Elsewhere (non-x86) it is a
// plain function.
#ifndef STRATA_RUNTIME_KERNELS_CPU_DISPATCH_H_
#define STRATA_RUNTIME_KERNELS_CPU_DISPATCH_H_

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define STRATA_CPU_CLONES \
  __attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default")))
#else
#define STRATA_CPU_CLONES
#endif

namespace strata::kernels {

// "avx512", "avx2" or "baseline": the version STRATA_CPU_CLONES functions run on this CPU.
inline const char* DispatchedIsa() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    return "avx512";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
#endif
  return "baseline";
}

}  // namespace strata::kernels

#endif  // STRATA_RUNTIME_KERNELS_CPU_DISPATCH_H_
