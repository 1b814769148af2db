// kernels/cuda/launch.h: the host side of how kernels/cuda launches its kernels (launch.cuh has the device side).
//
// Early launch (programmatic dependent launch, Hopper and later): on a stream where it is on, a kernel may be
// launched before the previous kernel of the stream has finished, which hides the gap between them. Every kernel of
// kernels/cuda calls early_launch_sync() first: it waits until the previous kernel has finished and its writes are
// visible (at once when the kernel was launched normally), then lets the next kernel launch. Kernels of other
// libraries (cuBLAS) are launched normally and waited for as usual.
#pragma once

#include <cuda_runtime_api.h>

namespace pginfer::cuda {

// Turns early launch on or off for the kernels launched on `stream` (off by default).
void set_early_launch(cudaStream_t stream, bool on);
// Whether it is on for `stream`.
bool early_launch(cudaStream_t stream);

}  // namespace pginfer::cuda
