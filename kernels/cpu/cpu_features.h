// kernels/cpu/cpu_features.h: which SIMD instruction sets this processor and OS support, read once.
#pragma once

namespace pginfer {

// SIMD levels our kernels have code for, in increasing order.
enum class SimdLevel { Scalar = 0, Avx2 = 1, Avx512 = 2 };

// The best level the running machine supports (AVX2 needs FMA and F16C too; AVX-512 needs F, BW, VL, DQ;
// each also needs the OS to save its registers). The environment variable PG_INFER_SIMD=scalar|avx2|avx512
// lowers it, for tests and benchmarks.
SimdLevel simd_level();

// The best level of the machine, ignoring PG_INFER_SIMD.
SimdLevel machine_simd_level();

// Whether AVX-512 VNNI (vpdpbusd) may be used (implies simd_level() == Avx512).
bool has_avx512_vnni();

// "scalar", "avx2" or "avx512".
const char* simd_level_name(SimdLevel level);

}  // namespace pginfer
