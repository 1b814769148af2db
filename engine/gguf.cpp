// engine/gguf.cpp: the validating GGUF reader. Every read goes through a Cursor that checks the bytes left
// before touching them, so a malformed file is an error message, never an out-of-bounds read.
#include "engine/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace pginfer {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
constexpr uint64_t kMaxStringLength = (uint64_t)1 << 30;

// Bytes of one element of a fixed-size value type, 0 for STRING and ARRAY, -1 for unknown types.
int fixed_size(uint32_t type) {
  switch ((GgufValueType)type) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::BOOL: return 1;
    case GgufValueType::U16:
    case GgufValueType::I16: return 2;
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::F32: return 4;
    case GgufValueType::U64:
    case GgufValueType::I64:
    case GgufValueType::F64: return 8;
    case GgufValueType::STRING:
    case GgufValueType::ARRAY: return 0;
  }
  return -1;
}

// Reads little-endian values from [pos, end) with bounds checks; the first failure sticks.
class Cursor {
 public:
  Cursor(const uint8_t* begin, size_t size) : begin_(begin), pos_(begin), end_(begin + size) {}

  size_t offset() const { return (size_t)(pos_ - begin_); }
  size_t remaining() const { return (size_t)(end_ - pos_); }

  bool bytes(void* out, size_t n) {
    if (n > remaining()) return false;
    std::memcpy(out, pos_, n);
    pos_ += n;
    return true;
  }
  bool skip(size_t n) {
    if (n > remaining()) return false;
    pos_ += n;
    return true;
  }
  bool u32(uint32_t* v) { return bytes(v, 4); }
  bool u64(uint64_t* v) { return bytes(v, 8); }
  // A string as a view into the file; its length must fit in what remains.
  bool str(std::string_view* out) {
    uint64_t len;
    if (!u64(&len) || len > remaining() || len > kMaxStringLength) return false;
    *out = std::string_view(reinterpret_cast<const char*>(pos_), (size_t)len);
    pos_ += len;
    return true;
  }
  const uint8_t* here() const { return pos_; }

 private:
  const uint8_t* begin_;
  const uint8_t* pos_;
  const uint8_t* end_;
};

// Reads one scalar of fixed-size `type` into `v`.
bool read_scalar(Cursor& c, uint32_t type, GgufValue* v) {
  uint8_t raw[8] = {0};
  const int size = fixed_size(type);
  if (size <= 0 || !c.bytes(raw, (size_t)size)) return false;
  switch ((GgufValueType)type) {
    case GgufValueType::U8: v->u = raw[0]; v->i = raw[0]; break;
    case GgufValueType::I8: v->i = (int8_t)raw[0]; v->u = (uint64_t)v->i; break;
    case GgufValueType::BOOL: v->u = raw[0]; v->i = raw[0]; break;
    case GgufValueType::U16: { uint16_t x; std::memcpy(&x, raw, 2); v->u = x; v->i = x; break; }
    case GgufValueType::I16: { int16_t x; std::memcpy(&x, raw, 2); v->i = x; v->u = (uint64_t)x; break; }
    case GgufValueType::U32: { uint32_t x; std::memcpy(&x, raw, 4); v->u = x; v->i = x; break; }
    case GgufValueType::I32: { int32_t x; std::memcpy(&x, raw, 4); v->i = x; v->u = (uint64_t)x; break; }
    case GgufValueType::F32: { float x; std::memcpy(&x, raw, 4); v->f = x; break; }
    case GgufValueType::U64: { uint64_t x; std::memcpy(&x, raw, 8); v->u = x; v->i = (int64_t)x; break; }
    case GgufValueType::I64: { int64_t x; std::memcpy(&x, raw, 8); v->i = x; v->u = (uint64_t)x; break; }
    case GgufValueType::F64: { double x; std::memcpy(&x, raw, 8); v->f = x; break; }
    default: return false;
  }
  return true;
}

bool is_integer_type(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::U16: case GgufValueType::I16:
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::U64: case GgufValueType::I64:
      return true;
    default: return false;
  }
}

bool is_signed_type(GgufValueType t) {
  return t == GgufValueType::I8 || t == GgufValueType::I16 || t == GgufValueType::I32 || t == GgufValueType::I64;
}

}  // namespace

Status GgufFile::open(const std::string& path, std::unique_ptr<GgufFile>* out) {
  const std::string where = "\"" + path + "\": ";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error(where + "cannot open: " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return io_error(where + "cannot stat: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return invalid_argument(where + "not a regular file");
  }
  const size_t size = (size_t)st.st_size;
  if (size == 0) {
    ::close(fd);
    return corrupt_file(where + "the file is empty");
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  if (map == MAP_FAILED) return io_error(where + "cannot map: " + std::strerror(map_errno));
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  f->data_ = static_cast<const uint8_t*>(map);
  f->size_ = size;
  f->map_ = map;
  PGI_RETURN_IF_ERROR(f->parse());
  *out = std::move(f);
  return Status::ok_status();
}

Status GgufFile::open_memory(const uint8_t* data, size_t size, const std::string& label,
                             std::unique_ptr<GgufFile>* out) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = label;
  f->data_ = data;
  f->size_ = size;
  PGI_RETURN_IF_ERROR(f->parse());
  *out = std::move(f);
  return Status::ok_status();
}

GgufFile::~GgufFile() {
  if (map_ != nullptr) munmap(map_, size_);
}

Status GgufFile::parse() {
  const std::string where = "\"" + path_ + "\": ";
  Cursor c(data_, size_);
  auto truncated = [&](const std::string& what) {
    return corrupt_file(where + "the file is truncated (" + what + " at byte " + std::to_string(c.offset()) + ")");
  };

  uint32_t magic = 0;
  if (size_ < 4 || !c.u32(&magic)) return corrupt_file(where + "too short to be a GGUF file");
  if (magic != kMagic) return corrupt_file(where + "not a GGUF file (bad magic)");
  if (!c.u32(&version_)) return truncated("version");
  if (version_ == 1) return unsupported(where + "GGUF version 1 is not supported (convert the file again)");
  if (version_ != 2 && version_ != 3) {
    return unsupported(where + "unsupported GGUF version " + std::to_string(version_));
  }
  uint64_t n_tensors = 0, n_kv = 0;
  if (!c.u64(&n_tensors) || !c.u64(&n_kv)) return truncated("header");
  // Each pair needs at least a key length, a type and one byte; each tensor info at least 8+4+8+4+8 bytes.
  if (n_kv > c.remaining() / 13) return corrupt_file(where + "metadata count " + std::to_string(n_kv) + " is larger than the file");
  if (n_tensors > c.remaining() / 32) return corrupt_file(where + "tensor count " + std::to_string(n_tensors) + " is larger than the file");

  key_order_.reserve((size_t)n_kv);
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string_view key;
    if (!c.str(&key)) return truncated("metadata key");
    const std::string key_str(key);
    if (key.empty()) return corrupt_file(where + "empty metadata key");
    if (kv_.count(key_str)) return corrupt_file(where + "duplicate metadata key " + key_str);
    uint32_t type = 0;
    if (!c.u32(&type)) return truncated("metadata type");
    GgufValue v;
    if (type > 12) {
      return corrupt_file(where + "metadata key " + key_str + " has unknown value type " + std::to_string(type));
    }
    v.type = (GgufValueType)type;
    if (v.type == GgufValueType::STRING) {
      if (!c.str(&v.str)) return truncated("string value of " + key_str);
    } else if (v.type == GgufValueType::ARRAY) {
      uint32_t et = 0;
      uint64_t count = 0;
      if (!c.u32(&et) || !c.u64(&count)) return truncated("array header of " + key_str);
      if (et > 12) return corrupt_file(where + "metadata key " + key_str + " is an array of unknown type " + std::to_string(et));
      if ((GgufValueType)et == GgufValueType::ARRAY) {
        return corrupt_file(where + "metadata key " + key_str + " is an array of arrays, which is not supported");
      }
      v.array_type = (GgufValueType)et;
      v.array_count = count;
      if (v.array_type == GgufValueType::STRING) {
        if (count > c.remaining() / 8) return truncated("string array " + key_str);
        v.array_strings.reserve((size_t)count);
        for (uint64_t i = 0; i < count; ++i) {
          std::string_view s;
          if (!c.str(&s)) return truncated("string array " + key_str);
          v.array_strings.push_back(s);
        }
      } else {
        const size_t esize = (size_t)fixed_size(et);
        if (count > c.remaining() / esize) return truncated("array " + key_str);
        v.array_data = c.here();
        if (v.array_type == GgufValueType::BOOL) {
          for (uint64_t i = 0; i < count; ++i) {
            if (v.array_data[i] > 1) return corrupt_file(where + "metadata key " + key_str + " has a bool that is neither 0 nor 1");
          }
        }
        c.skip(count * esize);
      }
    } else {
      if (!read_scalar(c, type, &v)) return truncated("value of " + key_str);
      if (v.type == GgufValueType::BOOL && v.u > 1) {
        return corrupt_file(where + "metadata key " + key_str + " has a bool that is neither 0 nor 1");
      }
    }
    key_order_.push_back(key_str);
    kv_.emplace(key_str, std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (a->type != GgufValueType::U32) return corrupt_file(where + "general.alignment must be a uint32");
    if (a->u == 0 || (a->u & (a->u - 1)) != 0) {
      return corrupt_file(where + "general.alignment " + std::to_string(a->u) + " is not a power of two");
    }
    alignment_ = a->u;
  }

  tensors_.reserve((size_t)n_tensors);
  for (uint64_t t = 0; t < n_tensors; ++t) {
    GgufTensor info;
    std::string_view name;
    if (!c.str(&name)) return truncated("tensor name");
    if (name.empty()) return corrupt_file(where + "tensor " + std::to_string(t) + " has an empty name");
    info.name = std::string(name);
    if (tensor_index_.count(info.name)) return corrupt_file(where + "duplicate tensor " + info.name);
    uint32_t n_dims = 0;
    if (!c.u32(&n_dims)) return truncated("tensor " + info.name);
    if (n_dims < 1 || n_dims > 4) {
      return corrupt_file(where + "tensor " + info.name + " has " + std::to_string(n_dims) + " dimensions (1 to 4 allowed)");
    }
    info.n_dims = (int)n_dims;
    int64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = 0;
      if (!c.u64(&ne)) return truncated("tensor " + info.name);
      if (ne == 0 || ne > (uint64_t)INT64_MAX) {
        return corrupt_file(where + "tensor " + info.name + " has an invalid dimension " + std::to_string(ne));
      }
      if ((uint64_t)n_elements > (uint64_t)INT64_MAX / ne) {
        return corrupt_file(where + "tensor " + info.name + " has too many elements");
      }
      n_elements *= (int64_t)ne;
      info.ne[d] = (int64_t)ne;
    }
    uint32_t raw_type = 0;
    if (!c.u32(&raw_type)) return truncated("tensor " + info.name);
    const TypeTraits* tr = type_traits_raw(raw_type);
    if (tr == nullptr || raw_type == (uint32_t)TensorType::Q8_K) {
      return unsupported(where + "tensor " + info.name + " has unsupported type " + std::to_string(raw_type));
    }
    info.type = (TensorType)raw_type;
    if (info.ne[0] % tr->block_elems != 0) {
      return corrupt_file(where + "tensor " + info.name + " has rows of " + std::to_string(info.ne[0]) +
                          " values, not a multiple of the " + tr->name + " block size " + std::to_string(tr->block_elems));
    }
    const uint64_t blocks = (uint64_t)n_elements / tr->block_elems;
    if (blocks > SIZE_MAX / tr->block_bytes) return corrupt_file(where + "tensor " + info.name + " is too large");
    info.n_bytes = (size_t)(blocks * tr->block_bytes);
    if (!c.u64(&info.offset)) return truncated("tensor " + info.name);
    if (info.offset % alignment_ != 0) {
      return corrupt_file(where + "tensor " + info.name + " is not aligned to " + std::to_string(alignment_) + " bytes");
    }
    tensor_index_.emplace(info.name, tensors_.size());
    tensors_.push_back(std::move(info));
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t header_end = c.offset();
  const uint64_t data_start = (header_end + alignment_ - 1) / alignment_ * alignment_;
  if (data_start > size_ && !tensors_.empty()) return truncated("data section");
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (GgufTensor& t : tensors_) {
    const uint64_t avail = size_ > data_start ? size_ - data_start : 0;
    if (t.offset > avail || t.n_bytes > avail - t.offset) {
      return corrupt_file(where + "tensor " + t.name + " extends past the end of the file");
    }
    t.data = data_ + data_start + t.offset;
    ranges.push_back({t.offset, t.offset + t.n_bytes});
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) {
      for (const GgufTensor& t : tensors_) {
        if (t.offset == ranges[i].first) return corrupt_file(where + "tensor " + t.name + " overlaps another tensor");
      }
    }
  }
  return Status::ok_status();
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_.find(std::string(key));
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufTensor* GgufFile::tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

bool GgufFile::get_string(std::string_view key, std::string* out) const {
  const GgufValue* v = find(key);
  if (v == nullptr || v->type != GgufValueType::STRING) return false;
  *out = std::string(v->str);
  return true;
}

bool GgufFile::get_u64(std::string_view key, uint64_t* out) const {
  const GgufValue* v = find(key);
  if (v == nullptr || !is_integer_type(v->type)) return false;
  if (is_signed_type(v->type) && v->i < 0) return false;
  *out = v->u;
  return true;
}

bool GgufFile::get_i64(std::string_view key, int64_t* out) const {
  const GgufValue* v = find(key);
  if (v == nullptr || !is_integer_type(v->type)) return false;
  if (v->type == GgufValueType::U64 && v->u > (uint64_t)INT64_MAX) return false;
  *out = v->i;
  return true;
}

bool GgufFile::get_f64(std::string_view key, double* out) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return false;
  if (v->type == GgufValueType::F32 || v->type == GgufValueType::F64) {
    *out = v->f;
  } else if (is_integer_type(v->type)) {
    *out = is_signed_type(v->type) ? (double)v->i : (double)v->u;
  } else {
    return false;
  }
  return true;
}

bool GgufFile::get_bool(std::string_view key, bool* out) const {
  const GgufValue* v = find(key);
  if (v == nullptr || v->type != GgufValueType::BOOL) return false;
  *out = v->u != 0;
  return true;
}

}  // namespace pginfer
