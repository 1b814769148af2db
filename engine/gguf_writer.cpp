// engine/gguf_writer.cpp: serialisation of GGUF version 3. Metadata and tensor infos are encoded in memory
// (they are small); tensor data is streamed one tensor at a time into a temporary file that is renamed into
// place only when everything has been written and flushed. What the writer accepts, the reader accepts.
#include "engine/gguf_writer.h"

#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <unordered_set>

namespace pginfer {

static_assert(std::endian::native == std::endian::little, "the GGUF writer assumes a little-endian host");

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" as a little-endian uint32
constexpr uint32_t kVersion = 3;
constexpr uint32_t kDefaultAlignment = 32;
const char* const kAlignmentKey = "general.alignment";

void put_bytes(std::vector<uint8_t>& out, const void* p, size_t n) {
  if (n == 0) return;
  const uint8_t* b = static_cast<const uint8_t*>(p);
  out.insert(out.end(), b, b + n);
}
void put_u32(std::vector<uint8_t>& out, uint32_t v) { put_bytes(out, &v, 4); }
void put_u64(std::vector<uint8_t>& out, uint64_t v) { put_bytes(out, &v, 8); }
void put_string(std::vector<uint8_t>& out, std::string_view s) {
  put_u64(out, s.size());
  put_bytes(out, s.data(), s.size());
}

// Bytes of one element of a fixed-size value type; 0 for STRING, ARRAY and unknown numbers.
size_t fixed_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::BOOL: return 1;
    case GgufValueType::U16: case GgufValueType::I16: return 2;
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::F32: return 4;
    case GgufValueType::U64: case GgufValueType::I64: case GgufValueType::F64: return 8;
    default: return 0;
  }
}

// Serialises a scalar of type t from a reader's widened value.
void put_scalar(std::vector<uint8_t>& out, GgufValueType t, const GgufValue& v) {
  switch (t) {
    case GgufValueType::U8: { uint8_t x = (uint8_t)v.u; put_bytes(out, &x, 1); break; }
    case GgufValueType::BOOL: { uint8_t x = v.u != 0 ? 1 : 0; put_bytes(out, &x, 1); break; }
    case GgufValueType::I8: { int8_t x = (int8_t)v.i; put_bytes(out, &x, 1); break; }
    case GgufValueType::U16: { uint16_t x = (uint16_t)v.u; put_bytes(out, &x, 2); break; }
    case GgufValueType::I16: { int16_t x = (int16_t)v.i; put_bytes(out, &x, 2); break; }
    case GgufValueType::U32: { uint32_t x = (uint32_t)v.u; put_bytes(out, &x, 4); break; }
    case GgufValueType::I32: { int32_t x = (int32_t)v.i; put_bytes(out, &x, 4); break; }
    case GgufValueType::F32: { float x = (float)v.f; put_bytes(out, &x, 4); break; }
    case GgufValueType::U64: put_u64(out, v.u); break;
    case GgufValueType::I64: { int64_t x = v.i; put_bytes(out, &x, 8); break; }
    case GgufValueType::F64: { double x = v.f; put_bytes(out, &x, 8); break; }
    default: break;
  }
}

// The temporary output file: closed, and removed unless committed, whatever path leaves `write`.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {}
  ~TempFile() {
    if (f_ != nullptr) std::fclose(f_);
    if (created_ && !committed_) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  bool create() {
    f_ = std::fopen(path_.c_str(), "wb");
    created_ = f_ != nullptr;
    return created_;
  }
  bool write(const void* p, size_t n) { return n == 0 || std::fwrite(p, 1, n, f_) == n; }
  // Flushes to the disk and closes; false (errno set) on failure.
  bool finish() {
    if (std::fflush(f_) != 0 || ::fsync(fileno(f_)) != 0) return false;
    FILE* f = f_;
    f_ = nullptr;
    return std::fclose(f) == 0;
  }
  void commit() { committed_ = true; }

 private:
  std::string path_;
  FILE* f_ = nullptr;
  bool created_ = false;
  bool committed_ = false;
};

}  // namespace

void GgufWriter::set_encoded(const std::string& key, std::vector<uint8_t> encoded) {
  for (Entry& e : entries_) {
    if (e.key == key) {
      e.encoded = std::move(encoded);
      return;
    }
  }
  entries_.push_back({key, std::move(encoded)});
}

void GgufWriter::set_string(const std::string& key, const std::string& value) {
  std::vector<uint8_t> e;
  put_u32(e, (uint32_t)GgufValueType::STRING);
  put_string(e, value);
  set_encoded(key, std::move(e));
}

void GgufWriter::set_u32(const std::string& key, uint32_t value) {
  std::vector<uint8_t> e;
  put_u32(e, (uint32_t)GgufValueType::U32);
  put_u32(e, value);
  set_encoded(key, std::move(e));
}

void GgufWriter::set_i32(const std::string& key, int32_t value) {
  std::vector<uint8_t> e;
  put_u32(e, (uint32_t)GgufValueType::I32);
  put_bytes(e, &value, 4);
  set_encoded(key, std::move(e));
}

void GgufWriter::set_u64(const std::string& key, uint64_t value) {
  std::vector<uint8_t> e;
  put_u32(e, (uint32_t)GgufValueType::U64);
  put_u64(e, value);
  set_encoded(key, std::move(e));
}

void GgufWriter::set_f32(const std::string& key, float value) {
  std::vector<uint8_t> e;
  put_u32(e, (uint32_t)GgufValueType::F32);
  put_bytes(e, &value, 4);
  set_encoded(key, std::move(e));
}

void GgufWriter::set_bool(const std::string& key, bool value) {
  std::vector<uint8_t> e;
  put_u32(e, (uint32_t)GgufValueType::BOOL);
  const uint8_t b = value ? 1 : 0;
  put_bytes(e, &b, 1);
  set_encoded(key, std::move(e));
}

void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& values) {
  std::vector<uint8_t> e;
  put_u32(e, (uint32_t)GgufValueType::ARRAY);
  put_u32(e, (uint32_t)GgufValueType::STRING);
  put_u64(e, values.size());
  for (const std::string& s : values) put_string(e, s);
  set_encoded(key, std::move(e));
}

void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& values) {
  std::vector<uint8_t> e;
  put_u32(e, (uint32_t)GgufValueType::ARRAY);
  put_u32(e, (uint32_t)GgufValueType::F32);
  put_u64(e, values.size());
  put_bytes(e, values.data(), values.size() * 4);
  set_encoded(key, std::move(e));
}

void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& values) {
  std::vector<uint8_t> e;
  put_u32(e, (uint32_t)GgufValueType::ARRAY);
  put_u32(e, (uint32_t)GgufValueType::I32);
  put_u64(e, values.size());
  put_bytes(e, values.data(), values.size() * 4);
  set_encoded(key, std::move(e));
}

void GgufWriter::copy_value(const std::string& key, const GgufValue& v) {
  auto refuse = [&](const std::string& why) {
    if (error_.empty()) error_ = "cannot copy metadata key " + key + ": " + why;
  };
  std::vector<uint8_t> e;
  put_u32(e, (uint32_t)v.type);
  if (v.type == GgufValueType::STRING) {
    put_string(e, v.str);
  } else if (v.type == GgufValueType::ARRAY) {
    put_u32(e, (uint32_t)v.array_type);
    if (v.array_type == GgufValueType::STRING) {
      if (v.array_strings.size() != v.array_count) return refuse("its string count does not match its elements");
      put_u64(e, v.array_strings.size());
      for (std::string_view s : v.array_strings) put_string(e, s);
    } else {
      const size_t esize = fixed_size(v.array_type);
      if (esize == 0) return refuse("arrays of type " + std::to_string((uint32_t)v.array_type) + " cannot be stored");
      if (v.array_count > std::numeric_limits<size_t>::max() / esize) return refuse("the array is too large");
      if (v.array_count > 0 && v.array_data == nullptr) return refuse("the array has no data");
      put_u64(e, v.array_count);
      put_bytes(e, v.array_data, (size_t)v.array_count * esize);
    }
  } else if (fixed_size(v.type) != 0) {
    put_scalar(e, v.type, v);
  } else {
    return refuse("unknown value type " + std::to_string((uint32_t)v.type));
  }
  set_encoded(key, std::move(e));
}

void GgufWriter::add_tensor(const std::string& name, TensorType type, const std::vector<int64_t>& ne, DataFn fill) {
  tensors_.push_back({name, type, ne, std::move(fill)});
}

Status GgufWriter::write(const std::string& path) const {
  const std::string where = "\"" + path + "\": ";
  try {
    if (!error_.empty()) return invalid_argument(where + error_);

    // The alignment: the caller's general.alignment when set (a uint32 power of two), else 32, added.
    uint32_t alignment = kDefaultAlignment;
    bool has_alignment = false;
    for (const Entry& e : entries_) {
      if (e.key.empty()) return invalid_argument(where + "empty metadata key");
      if (e.key != kAlignmentKey) continue;
      has_alignment = true;
      uint32_t type = 0;
      if (e.encoded.size() == 8) std::memcpy(&type, e.encoded.data(), 4);
      if (type == (uint32_t)GgufValueType::U32) std::memcpy(&alignment, e.encoded.data() + 4, 4);
      if (e.encoded.size() != 8 || type != (uint32_t)GgufValueType::U32 || alignment == 0 ||
          (alignment & (alignment - 1)) != 0) {
        return invalid_argument(where + "general.alignment must be a uint32 power of two");
      }
    }

    // Header and metadata.
    std::vector<uint8_t> head;
    put_u32(head, kMagic);
    put_u32(head, kVersion);
    put_u64(head, tensors_.size());
    put_u64(head, entries_.size() + (has_alignment ? 0 : 1));
    for (const Entry& e : entries_) {
      put_string(head, e.key);
      put_bytes(head, e.encoded.data(), e.encoded.size());
    }
    if (!has_alignment) {
      put_string(head, kAlignmentKey);
      put_u32(head, (uint32_t)GgufValueType::U32);
      put_u32(head, alignment);
    }

    // Tensor infos, with each tensor's data at the next aligned offset.
    std::vector<size_t> sizes;
    sizes.reserve(tensors_.size());
    std::unordered_set<std::string> names;
    uint64_t offset = 0;
    for (const TensorDecl& t : tensors_) {
      const std::string what = where + "tensor " + t.name;
      if (t.name.empty()) return invalid_argument(where + "a tensor has an empty name");
      if (!names.insert(t.name).second) return invalid_argument(where + "duplicate tensor " + t.name);
      const TypeTraits* tr = type_traits(t.type);
      if (tr == nullptr || t.type == TensorType::Q8_K) {
        return invalid_argument(what + " has unsupported type " + std::to_string((uint32_t)t.type));
      }
      if (t.ne.empty() || t.ne.size() > 4) {
        return invalid_argument(what + " has " + std::to_string(t.ne.size()) + " dimensions (1 to 4 allowed)");
      }
      uint64_t n = 1;
      for (int64_t d : t.ne) {
        if (d <= 0) return invalid_argument(what + " has an invalid dimension " + std::to_string(d));
        if (n > (uint64_t)std::numeric_limits<int64_t>::max() / (uint64_t)d) {
          return invalid_argument(what + " has too many elements");
        }
        n *= (uint64_t)d;
      }
      if (t.ne[0] % tr->block_elems != 0) {
        return invalid_argument(what + " has rows of " + std::to_string(t.ne[0]) + " values, not a multiple of the " +
                                tr->name + " block size " + std::to_string(tr->block_elems));
      }
      const uint64_t blocks = n / (uint64_t)tr->block_elems;
      if (blocks > (std::numeric_limits<size_t>::max() - alignment) / tr->block_bytes) {
        return invalid_argument(what + " is too large");
      }
      const size_t bytes = (size_t)(blocks * tr->block_bytes);
      put_string(head, t.name);
      put_u32(head, (uint32_t)t.ne.size());
      for (int64_t d : t.ne) put_u64(head, (uint64_t)d);
      put_u32(head, (uint32_t)t.type);
      put_u64(head, offset);
      sizes.push_back(bytes);
      const uint64_t padded = (bytes + alignment - 1) / alignment * alignment;
      if (offset > std::numeric_limits<uint64_t>::max() - padded) return invalid_argument(what + " is too large");
      offset += padded;
    }
    head.resize((head.size() + alignment - 1) / alignment * alignment, 0);

    // Stream: header, then each tensor's bytes and padding, one buffer at a time.
    TempFile out(path + ".tmp");
    if (!out.create()) return io_error(where + "cannot create " + path + ".tmp: " + std::strerror(errno));
    if (!out.write(head.data(), head.size())) return io_error(where + "write failed: " + std::strerror(errno));
    const std::vector<uint8_t> zeros(alignment, 0);
    for (size_t i = 0; i < tensors_.size(); ++i) {
      std::vector<uint8_t> buffer;
      try {
        buffer.assign(sizes[i], 0);
      } catch (const std::bad_alloc&) {
        return out_of_memory(where + "cannot allocate " + std::to_string(sizes[i]) + " bytes for tensor " +
                             tensors_[i].name);
      }
      if (tensors_[i].fill) PGI_RETURN_IF_ERROR(tensors_[i].fill(buffer.data(), buffer.size()));
      if (!out.write(buffer.data(), buffer.size())) return io_error(where + "write failed: " + std::strerror(errno));
      const size_t tail = (alignment - sizes[i] % alignment) % alignment;
      if (!out.write(zeros.data(), tail)) {
        return io_error(where + "write failed: " + std::strerror(errno));
      }
    }
    if (!out.finish()) return io_error(where + "write failed: " + std::strerror(errno));
    if (std::rename((path + ".tmp").c_str(), path.c_str()) != 0) {
      return io_error(where + "cannot rename into place: " + std::strerror(errno));
    }
    out.commit();
    return Status::ok_status();
  } catch (const std::bad_alloc&) {
    return out_of_memory(where + "out of memory while writing");
  } catch (const std::exception& e) {
    return internal_error(where + "unexpected error while writing: " + e.what());
  }
}

}  // namespace pginfer
