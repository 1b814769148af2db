// tests/cuda_emu/include/cuda_runtime.h: the emulated CUDA runtime (cuda_runtime_api.h).
#pragma once

#include "cuda_runtime_api.h"
