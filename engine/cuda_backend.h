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
// Products of one to seven tokens run dequantizing matrix-vector kernels, several products of the same input in
// one launch (q, k, v; gate and up with their swiglu; a product added to the residual: Backend::matmuls,
// matmul_swiglu, matmul_add). Larger ones multiply F16 operands with cublasGemmEx (float accumulation): quantized
// matrices are dequantized to F16 once, in prepare(), when these copies take at most a quarter of the memory free
// after the weights, and at each product otherwise. Activations are first rounded as the CPU backend's products
// see them (to Q8_0/Q8_K values for quantized weights, F16/BF16 for those weights;
// kernels/common/round_activations.h), so both backends compute the same sums. Attention: attention.h (decoding)
// and attention_tiled.h (prompt chunks).
//
// CUDA graphs: a forward pass announced by Backend::begin_pass is identified by its shape (the executor, each
// chunk's cache and token count, the rows of logits, the bound of its attention keys: cuda::attention_key_bound). The
// second pass of a shape is captured into a CUDA graph; later ones replay it: their operations launch nothing,
// they only stage their uploads (ids, positions, block tables) in the page-locked memory the graph's copies read,
// and end_pass launches the graph. A replay checks each operation against the recording and gives up (the
// executor issues the pass again, as launched kernels) when one differs; so does a capture that would have to
// grow memory. Growing memory a recording names drops every recording.
#pragma once

#include <memory>
#include <string>

#include "engine/backend.h"
#include "engine/status.h"

namespace pginfer {

// Version of the interface between the engine and the module; the module reports the one it was built with
// and the loader refuses a different one. Bump it whenever Backend, GgufTensor, Model or the factory changes.
constexpr int kCudaModuleAbi = 5;

// Options of the CUDA backend.
struct CudaBackendOptions {
  int device = 0;                  // CUDA device ordinal
  bool graphs = true;              // record forward passes as CUDA graphs and replay them (Backend::begin_pass)
  bool f16_weight_copies = true;   // keep F16 copies of quantized matrices for cuBLAS products (when they fit)
  bool early_launch = false;       // let kernels launch before the previous one ends (Hopper; kernels/cuda/launch.cuh)
};

// The module's factory flags (CudaBackendOptions as bits).
constexpr unsigned kCudaNoGraphs = 1u << 0;
constexpr unsigned kCudaNoF16WeightCopies = 1u << 1;
constexpr unsigned kCudaEarlyLaunch = 1u << 2;

// Number of CUDA devices usable by the CUDA backend: 0 when the module cannot be loaded or no driver or GPU is
// present, in which case *why (if given) says which.
int cuda_device_count(std::string* why = nullptr);

// Creates the CUDA backend on options.device. Unsupported when the module or a device is unavailable (the
// message says why), OutOfMemory or Internal when the device cannot be set up.
Status make_cuda_backend(const CudaBackendOptions& options, std::unique_ptr<Backend>* out);

}  // namespace pginfer
