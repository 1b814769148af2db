// engine/gguf_writer.h: writes GGUF version 3 files (used by `infer synth` and `infer quantize`).
//
// Metadata is collected first, then tensors are declared with their shapes and types, then `write`
// streams header, metadata, tensor infos, padding and data to disk. Tensor data is supplied by a callback
// per tensor so that multi-gigabyte models are produced without holding them in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/gguf.h"
#include "engine/status.h"

namespace pginfer {

// Builds and writes one GGUF file.
class GgufWriter {
 public:
  // Fills `dst` (exactly the tensor's byte size) with the tensor's data; returns a failure to abort.
  using DataFn = std::function<Status(uint8_t* dst, size_t n_bytes)>;

  // Metadata setters; a key set twice keeps the last value, in the position of the first.
  void set_string(const std::string& key, const std::string& value);
  void set_u32(const std::string& key, uint32_t value);
  void set_i32(const std::string& key, int32_t value);
  void set_u64(const std::string& key, uint64_t value);
  void set_f32(const std::string& key, float value);
  void set_bool(const std::string& key, bool value);
  void set_string_array(const std::string& key, const std::vector<std::string>& values);
  void set_f32_array(const std::string& key, const std::vector<float>& values);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& values);
  // Copies a metadata value from an opened file (any type, arrays included). A malformed value (unknown
  // type, nested array, missing array data) is reported by `write`.
  void copy_value(const std::string& key, const GgufValue& value);

  // Declares a tensor of `type` with dimensions `ne` (ne[0] = row length); data comes from `fill`.
  void add_tensor(const std::string& name, TensorType type, const std::vector<int64_t>& ne, DataFn fill);

  // Writes the file (to `path` + ".tmp", renamed into place on success; removed on failure). Adds
  // general.alignment = 32 when the caller did not set it; refuses (InvalidArgument) shapes, types, names or
  // copied values the reader would refuse, and an alignment that is not a uint32 power of two.
  Status write(const std::string& path) const;

 private:
  struct Entry {
    std::string key;
    std::vector<uint8_t> encoded;  // value type + value, already serialised
  };
  struct TensorDecl {
    std::string name;
    TensorType type;
    std::vector<int64_t> ne;
    DataFn fill;
  };
  void set_encoded(const std::string& key, std::vector<uint8_t> encoded);

  std::vector<Entry> entries_;
  std::vector<TensorDecl> tensors_;
  std::string error_;  // the first value copy_value could not encode, reported by write
};

}  // namespace pginfer
