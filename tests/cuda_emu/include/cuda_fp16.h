// tests/cuda_emu/include/cuda_fp16.h: __half of the emulated device (tests/cuda_emu/cuda_emu.h).
#pragma once

#include "tests/cuda_emu/cuda_emu.h"
