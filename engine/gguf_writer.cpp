// engine/gguf_writer.cpp: serialisation of GGUF version 3.
#include "engine/gguf_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace pginfer {

namespace {

constexpr uint64_t kAlignment = 32;

void put_bytes(std::vector<uint8_t>& out, const void* p, size_t n) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  out.insert(out.end(), b, b + n);
}
void put_u32(std::vector<uint8_t>& out, uint32_t v) { put_bytes(out, &v, 4); }
void put_u64(std::vector<uint8_t>& out, uint64_t v) { put_bytes(out, &v, 8); }
void put_string(std::vector<uint8_t>& out, std::string_view s) {
  put_u64(out, s.size());
  put_bytes(out, s.data(), s.size());
}

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
    case GgufValueType::U8: case GgufValueType::BOOL: { uint8_t x = (uint8_t)v.u; put_bytes(out, &x, 1); break; }
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

// Writes all of `n` bytes or fails.
bool write_all(FILE* f, const void* p, size_t n) { return std::fwrite(p, 1, n, f) == n; }

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
  std::vector<uint8_t> e;
  put_u32(e, (uint32_t)v.type);
  if (v.type == GgufValueType::STRING) {
    put_string(e, v.str);
  } else if (v.type == GgufValueType::ARRAY) {
    put_u32(e, (uint32_t)v.array_type);
    put_u64(e, v.array_count);
    if (v.array_type == GgufValueType::STRING) {
      for (std::string_view s : v.array_strings) put_string(e, s);
    } else {
      put_bytes(e, v.array_data, v.array_count * fixed_size(v.array_type));
    }
  } else {
    put_scalar(e, v.type, v);
  }
  set_encoded(key, std::move(e));
}

void GgufWriter::add_tensor(const std::string& name, TensorType type, const std::vector<int64_t>& ne, DataFn fill) {
  tensors_.push_back({name, type, ne, std::move(fill)});
}

Status GgufWriter::write(const std::string& path) const {
  const std::string where = "\"" + path + "\": ";
  // Header, metadata (alignment added when absent) and tensor infos, with offsets laid out aligned.
  std::vector<uint8_t> head;
  put_u32(head, 0x46554747);
  put_u32(head, 3);
  put_u64(head, tensors_.size());
  bool has_alignment = false;
  for (const Entry& e : entries_) has_alignment |= e.key == "general.alignment";
  put_u64(head, entries_.size() + (has_alignment ? 0 : 1));
  for (const Entry& e : entries_) {
    put_string(head, e.key);
    put_bytes(head, e.encoded.data(), e.encoded.size());
  }
  if (!has_alignment) {
    put_string(head, "general.alignment");
    put_u32(head, (uint32_t)GgufValueType::U32);
    put_u32(head, (uint32_t)kAlignment);
  }
  std::vector<size_t> sizes;
  uint64_t offset = 0;
  for (const TensorDecl& t : tensors_) {
    int64_t n = 1;
    for (int64_t d : t.ne) n *= d;
    const TypeTraits* tr = type_traits(t.type);
    if (tr == nullptr || t.ne.empty() || t.ne.size() > 4 || t.ne[0] % tr->block_elems != 0) {
      return invalid_argument(where + "tensor " + t.name + " has a shape its type cannot store");
    }
    const size_t bytes = (size_t)(n / tr->block_elems) * tr->block_bytes;
    put_string(head, t.name);
    put_u32(head, (uint32_t)t.ne.size());
    for (int64_t d : t.ne) put_u64(head, (uint64_t)d);
    put_u32(head, (uint32_t)t.type);
    put_u64(head, offset);
    sizes.push_back(bytes);
    offset += (bytes + kAlignment - 1) / kAlignment * kAlignment;
  }
  const size_t pad = (kAlignment - head.size() % kAlignment) % kAlignment;
  head.insert(head.end(), pad, 0);

  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return io_error(where + "cannot create: " + std::strerror(errno));
  std::unique_ptr<FILE, int (*)(FILE*)> closer(f, std::fclose);
  if (!write_all(f, head.data(), head.size())) return io_error(where + "write failed");
  std::vector<uint8_t> buffer;
  static const uint8_t zeros[kAlignment] = {0};
  for (size_t i = 0; i < tensors_.size(); ++i) {
    try {
      buffer.assign(sizes[i], 0);
    } catch (const std::bad_alloc&) {
      return out_of_memory(where + "cannot buffer tensor " + tensors_[i].name);
    }
    PGI_RETURN_IF_ERROR(tensors_[i].fill(buffer.data(), buffer.size()));
    if (!write_all(f, buffer.data(), buffer.size())) return io_error(where + "write failed");
    const size_t tail = (kAlignment - sizes[i] % kAlignment) % kAlignment;
    if (!write_all(f, zeros, tail)) return io_error(where + "write failed");
  }
  if (std::fflush(f) != 0) return io_error(where + "write failed: " + std::strerror(errno));
  closer.reset();
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return io_error(where + "cannot rename into place: " + std::strerror(errno));
  }
  return Status::ok_status();
}

}  // namespace pginfer
