// engine/gguf.h: read-only, validating access to a GGUF file through a memory map.
//
// The GGUF format (versions 2 and 3; version 1 is refused), all integers little-endian:
//
//   header:   uint32 magic "GGUF" (bytes 'G','G','U','F'), uint32 version,
//             uint64 n_tensors, uint64 n_kv
//   n_kv key/value pairs:
//             string key, uint32 value_type, value
//   n_tensors tensor infos:
//             string name, uint32 n_dims (1..4), uint64 ne[n_dims] (ne[0] is the row length),
//             uint32 ggml_type, uint64 offset (relative to the data section, a multiple of the alignment)
//   padding to the alignment (metadata key general.alignment, uint32, default 32, a power of two)
//   data section: the tensors' bytes
//
//   string: uint64 length, then that many bytes (UTF-8, no terminator)
//   value types: 0 uint8, 1 int8, 2 uint16, 3 int16, 4 uint32, 5 int32, 6 float32, 7 bool (1 byte),
//                8 string, 9 array (uint32 element type, uint64 count, elements), 10 uint64, 11 int64,
//                12 float64. Arrays of arrays are refused.
//
// Everything is validated before it is trusted: the magic, the version, every count and length against
// the bytes that remain in the file (so no allocation is sized by an unchecked field), tensor dimensions
// (positive, product without overflow, row length a multiple of the type's block size), types, names
// (unique, non-empty), offsets (aligned, inside the file, no overflow, no overlap). Weights are never
// copied: tensor data pointers point into the map.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/status.h"
#include "kernels/cpu/tensor_type.h"

namespace pginfer {

// GGUF metadata value types.
enum class GgufValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};

// One metadata value. Scalars are widened into the matching field; arrays keep a view into the map.
struct GgufValue {
  GgufValueType type = GgufValueType::U8;  // the stored type
  uint64_t u = 0;                          // unsigned integers and bool
  int64_t i = 0;                           // signed integers
  double f = 0;                            // floats
  std::string_view str;                    // STRING (points into the map)
  GgufValueType array_type = GgufValueType::U8;  // ARRAY: element type
  uint64_t array_count = 0;                       // ARRAY: number of elements
  const uint8_t* array_data = nullptr;  // ARRAY of fixed-size elements: the first element, in the map
  std::vector<std::string_view> array_strings;  // ARRAY of STRING: each element (views into the map)
};

// One tensor's description and its bytes in the map.
struct GgufTensor {
  std::string name;           // e.g. "blk.0.attn_q.weight"
  TensorType type;            // a supported type (others are rejected at open)
  int n_dims = 0;             // 1..4
  int64_t ne[4] = {1, 1, 1, 1};  // dimensions, ne[0] = row length (innermost)
  uint64_t offset = 0;        // from the start of the data section
  size_t n_bytes = 0;         // bytes of data
  const uint8_t* data = nullptr;  // into the map

  // Number of values.
  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  // Number of rows (product of every dimension but the first).
  int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
};

// An opened, validated GGUF file. Move-only; unmaps on destruction.
class GgufFile {
 public:
  // Opens and validates `path`. On failure returns a status whose message names the file and the
  // problem, e.g. `"m.gguf": tensor blk.3.ffn_up.weight extends past the end of the file`.
  static Status open(const std::string& path, std::unique_ptr<GgufFile>* out);

  // Validates a file image already in memory (for tests and the fuzzer); `label` names it in messages.
  // The bytes must outlive the returned object.
  static Status open_memory(const uint8_t* data, size_t size, const std::string& label,
                            std::unique_ptr<GgufFile>* out);

  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  // The path (or label) it was opened from.
  const std::string& path() const { return path_; }
  // Format version (2 or 3).
  uint32_t version() const { return version_; }
  // Data alignment in bytes.
  uint64_t alignment() const { return alignment_; }
  // Total file size in bytes.
  size_t file_size() const { return size_; }

  // Metadata keys in file order, and lookup by key (nullptr when absent).
  const std::vector<std::string>& keys() const { return key_order_; }
  const GgufValue* find(std::string_view key) const;

  // Typed getters: return false when the key is absent; set *err (if given) and return false when the
  // key exists with a type or value that does not convert. *out is written only on success.
  // A string value.
  bool get_string(std::string_view key, std::string* out, Status* err = nullptr) const;
  // Any integer type holding a non-negative value.
  bool get_u64(std::string_view key, uint64_t* out, Status* err = nullptr) const;
  // Any integer type whose value fits in an int64 (uint64 above INT64_MAX does not).
  bool get_i64(std::string_view key, int64_t* out, Status* err = nullptr) const;
  // float32, float64 or any integer type.
  bool get_f64(std::string_view key, double* out, Status* err = nullptr) const;
  // A bool value.
  bool get_bool(std::string_view key, bool* out, Status* err = nullptr) const;

  // Tensors in file order, and lookup by name (nullptr when absent).
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* tensor(std::string_view name) const;

 private:
  GgufFile() = default;
  Status parse();  // validates data_/size_ and fills the members below
  // Wraps a file image (and the map it lives in, unmapped when the object goes, or at once on failure)
  // in a validated GgufFile; every exception becomes a status.
  static Status from_image(const std::string& label, const uint8_t* data, size_t size, void* map,
                           std::unique_ptr<GgufFile>* out);

  std::string path_;
  const uint8_t* data_ = nullptr;  // start of the file image
  size_t size_ = 0;
  void* map_ = nullptr;            // non-null when we own an mmap of size_ bytes
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::string> key_order_;
  std::unordered_map<std::string, GgufValue> kv_;
  std::vector<GgufTensor> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace pginfer
