// kernels/cpu/ops_impl.h: the per-ISA versions of the operations in ops.h, chosen by ops.cpp.
#pragma once

#include <cstdint>

namespace pginfer {

// swiglu_row with GGML's vectorised exp (ops_avx2.cpp): bit-identical to llama.cpp's AVX-512 build.
void swiglu_row_avx2(const float* gate, const float* up, int64_t n, float* out);

}  // namespace pginfer
