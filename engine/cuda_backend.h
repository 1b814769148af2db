// engine/cuda_backend.h: the CUDA backend (an NVIDIA GPU through CUDA and cuBLAS) and how it is loaded.
//
// Loading: the backend and the kernels of kernels/cuda are built, when CMake finds a CUDA toolkit, into a
// shared module, libpginfer_cuda.so, which links the CUDA runtime statically and cuBLAS dynamically. The
// engine itself never links CUDA: make_cuda_backend() dlopens the module the first time it is asked for a
// device (never at startup, so the postmaster and supervisor stay free of CUDA), and a machine without a
// driver, without a GPU or without the toolkit's libraries gets a clear status instead of a failure to start.
// The module is searched for at $PG_INFER_CUDA_MODULE, next to the executable, in ../lib relative to it,
// and where the build put it. Chosen over linking cudart into the engine because cuBLAS (and a future
// cuBLASLt) are shared libraries that would otherwise be needed at program start.
//
// Memory: weights are copied to device memory once in prepare(); activations and the F16 KV caches live on
// the device: a contiguous one per Session, and the paged pool of the serving loop (create_kv_pool), whose
// block tables are copied to the device with each attention call; free_device_memory() sizes that pool.
// Products of one to seven tokens run dequantizing matrix-vector kernels; larger ones dequantize the weights
// to F16 and multiply with cublasGemmEx (float accumulation). Activations are first rounded as the CPU
// backend's products see them (to Q8_0/Q8_K values for quantized weights, F16/BF16 for those weights;
// kernels/common/round_activations.h), so both backends compute the same sums.
#pragma once

#include <memory>
#include <string>

#include "engine/backend.h"
#include "engine/status.h"

namespace pginfer {

// Version of the interface between the engine and the module; the module reports the one it was built with
// and the loader refuses a different one. Bump it whenever Backend, GgufTensor, Model or the factory changes.
constexpr int kCudaModuleAbi = 4;

// Options of the CUDA backend.
struct CudaBackendOptions {
  int device = 0;  // CUDA device ordinal
};

// Number of CUDA devices usable by the CUDA backend: 0 when the module cannot be loaded or no driver or GPU is
// present, in which case *why (if given) says which.
int cuda_device_count(std::string* why = nullptr);

// Creates the CUDA backend on options.device. Unsupported when the module or a device is unavailable (the
// message says why), OutOfMemory or Internal when the device cannot be set up.
Status make_cuda_backend(const CudaBackendOptions& options, std::unique_ptr<Backend>* out);

}  // namespace pginfer
