// kernels/cpu/cpu_features.cpp: SIMD level detection (GCC's cpuid builtins also check that the operating
// system saves the AVX and AVX-512 registers).
#include "kernels/cpu/cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace pginfer {

namespace {

SimdLevel detect() {
  SimdLevel level = SimdLevel::Scalar;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    level = SimdLevel::Avx2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl")) {
      level = SimdLevel::Avx512;
    }
  }
#endif
  // PG_INFER_SIMD may lower the level (never raise it past what the machine has).
  if (const char* want = std::getenv("PG_INFER_SIMD")) {
    SimdLevel cap = level;
    if (std::strcmp(want, "scalar") == 0) cap = SimdLevel::Scalar;
    if (std::strcmp(want, "avx2") == 0) cap = SimdLevel::Avx2;
    if (cap < level) level = cap;
  }
  return level;
}

}  // namespace

SimdLevel simd_level() {
  static const SimdLevel level = detect();
  return level;
}

bool has_avx512_vnni() {
#if defined(__x86_64__)
  static const bool vnni = simd_level() == SimdLevel::Avx512 && __builtin_cpu_supports("avx512vnni");
  return vnni;
#else
  return false;
#endif
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::Avx512: return "avx512";
    case SimdLevel::Avx2: return "avx2";
    default: return "scalar";
  }
}

}  // namespace pginfer
