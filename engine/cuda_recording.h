// engine/cuda_recording.h: what the CUDA backend (engine/cuda_backend.cpp, in the CUDA module only) keeps of a
// forward pass captured as a CUDA graph: the graph, the uploads and operations a replay must repeat, and how often
// an unrecorded pass shape was seen; and the device arrays of host ints that passes upload.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "engine/cuda_memory.h"

namespace pginfer {

// Host ints copied to the device, reused while the caller passes the same values again (the forward pass
// hands the same positions to rope and attention of every layer).
struct IntUpload {
  DeviceMemory mem;
  std::vector<int32_t> host;  // what mem holds; empty when unknown
};

// One upload of a recorded pass.
struct UploadStep {
  IntUpload* target = nullptr;  // the device array written
  int64_t n = 0;                // ints
  void* staged = nullptr;       // where the graph's copy reads them; null when the array held them already
};

// A captured pass: the CUDA graph, and what a replay must give it.
struct Recording {
  Recording() = default;
  Recording(const Recording&) = delete;
  Recording& operator=(const Recording&) = delete;
  ~Recording() {
    if (done) cudaEventSynchronize(done);
    if (exec) cudaGraphExecDestroy(exec);
    if (done) cudaEventDestroy(done);
  }
  cudaGraphExec_t exec = nullptr;
  cudaEvent_t done = nullptr;        // recorded after each launch
  PinnedStaging inputs;              // page-locked memory its uploads copy from
  std::vector<UploadStep> uploads;   // the pass's uploads, in order
  std::vector<int64_t> ops;          // per operation: its kind and the sizes its launches depend on
  uint64_t last_used = 0;            // pass counter at its last launch
};

// How often a pass shape without a recording was seen, and how often recording it failed.
struct Sighting {
  int passes = 0, failures = 0;
};

}  // namespace pginfer
