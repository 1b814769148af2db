// kernels/cpu/cpu_features.cpp: SIMD level detection with cpuid and xgetbv.
//
// An instruction set is usable only if the processor has it (cpuid) and the operating system saves its
// registers on context switches (XCR0, read with xgetbv once cpuid reports OSXSAVE): YMM state for AVX2,
// and opmask, upper ZMM and ZMM16-31 state for AVX-512.
#include "kernels/cpu/cpu_features.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace pginfer {

namespace {

struct Features {
  bool avx2 = false;    // AVX2 + FMA + F16C, YMM state saved
  bool avx512 = false;  // AVX-512 F, BW, VL, DQ, ZMM and opmask state saved
  bool vnni = false;    // AVX-512 VNNI on top of avx512
};

Features probe() {
  Features f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12), f16c = c & (1u << 29);
  if (!osxsave || !avx) return f;
  uint32_t xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool ymm_saved = (xcr0_lo & 0x6u) == 0x6u;    // SSE and AVX state
  const bool zmm_saved = (xcr0_lo & 0xe6u) == 0xe6u;  // plus opmask, ZMM_Hi256, Hi16_ZMM
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  const bool avx2 = b & (1u << 5);
  const bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17), avx512bw = b & (1u << 30), avx512vl = b & (1u << 31),
             avx512vnni = c & (1u << 11);
  f.avx2 = ymm_saved && avx2 && fma && f16c;
  f.avx512 = f.avx2 && zmm_saved && avx512f && avx512dq && avx512bw && avx512vl;
  f.vnni = f.avx512 && avx512vnni;
#endif
  return f;
}

const Features& features() {
  static const Features f = probe();
  return f;
}

SimdLevel detect() {
  const Features& f = features();
  SimdLevel level = f.avx512 ? SimdLevel::Avx512 : f.avx2 ? SimdLevel::Avx2 : SimdLevel::Scalar;
  // PG_INFER_SIMD may lower the level (never raise it past what the machine has).
  if (const char* want = std::getenv("PG_INFER_SIMD")) {
    SimdLevel cap = level;
    if (std::strcmp(want, "scalar") == 0) cap = SimdLevel::Scalar;
    if (std::strcmp(want, "avx2") == 0) cap = SimdLevel::Avx2;
    if (std::strcmp(want, "avx512") == 0) cap = SimdLevel::Avx512;
    if (cap < level) level = cap;
  }
  return level;
}

}  // namespace

SimdLevel simd_level() {
  static const SimdLevel level = detect();
  return level;
}

SimdLevel machine_simd_level() {
  const Features& f = features();
  return f.avx512 ? SimdLevel::Avx512 : f.avx2 ? SimdLevel::Avx2 : SimdLevel::Scalar;
}

bool has_avx512_vnni() {
  static const bool vnni = simd_level() == SimdLevel::Avx512 && features().vnni;
  return vnni;
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::Avx512: return "avx512";
    case SimdLevel::Avx2: return "avx2";
    default: return "scalar";
  }
}

}  // namespace pginfer
