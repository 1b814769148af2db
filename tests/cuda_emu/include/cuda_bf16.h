// tests/cuda_emu/include/cuda_bf16.h: __nv_bfloat16 of the emulated device (tests/cuda_emu/cuda_emu.h).
#pragma once

#include "tests/cuda_emu/cuda_emu.h"
