// engine/gguf.cpp: the validating GGUF reader. Every read goes through a Cursor that checks the bytes left
// before touching them, and every count is checked against those bytes before anything is sized by it, so
// a malformed file is an error message, never an out-of-bounds read, an overflow or a huge allocation.
#include "engine/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <exception>
#include <limits>
#include <new>

namespace pginfer {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
constexpr uint64_t kDefaultAlignment = 32;
// Smallest possible encodings, used to refuse counts that cannot fit before anything is reserved:
// a key/value pair is at least a key length and a value type; a tensor info at least a name length,
// n_dims, one dimension, a type and an offset.
constexpr uint64_t kMinKvBytes = 8 + 4;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;
// Most elements reserved up front from a count: a count is checked against the bytes that remain, but in a
// multi-gigabyte file a corrupt one could still ask for gigabytes; past this, containers grow as elements
// are actually read (each consumes bytes of the file).
constexpr uint64_t kMaxReserve = (uint64_t)1 << 18;

// `count`, capped for reserve().
size_t reserve_count(uint64_t count) { return (size_t)std::min(count, kMaxReserve); }

// Bytes of one element of a fixed-size value type; 0 for STRING, ARRAY and unknown types.
size_t fixed_size(GgufValueType type) {
  switch (type) {
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
  return 0;
}

// True for the value type numbers the format defines (0..12).
bool known_value_type(uint32_t raw) { return raw <= (uint32_t)GgufValueType::F64; }

// Name of a value type for messages.
const char* value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::U8: return "uint8";
    case GgufValueType::I8: return "int8";
    case GgufValueType::U16: return "uint16";
    case GgufValueType::I16: return "int16";
    case GgufValueType::U32: return "uint32";
    case GgufValueType::I32: return "int32";
    case GgufValueType::F32: return "float32";
    case GgufValueType::BOOL: return "bool";
    case GgufValueType::STRING: return "string";
    case GgufValueType::ARRAY: return "array";
    case GgufValueType::U64: return "uint64";
    case GgufValueType::I64: return "int64";
    case GgufValueType::F64: return "float64";
  }
  return "unknown";
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

// GGML's names of tensor types we do not run, so that a refusal says what the file holds.
const char* ggml_type_name(uint32_t raw) {
  switch (raw) {
    case 3: return "q4_1";
    case 6: return "q5_0";
    case 7: return "q5_1";
    case 9: return "q8_1";
    case 10: return "q2_K";
    case 11: return "q3_K";
    case 16: return "iq2_xxs";
    case 17: return "iq2_xs";
    case 18: return "iq3_xxs";
    case 19: return "iq1_s";
    case 20: return "iq4_nl";
    case 21: return "iq3_s";
    case 22: return "iq2_s";
    case 23: return "iq4_xs";
    case 24: return "i8";
    case 25: return "i16";
    case 26: return "i32";
    case 27: return "i64";
    case 28: return "f64";
    case 29: return "iq1_m";
    case 34: return "tq1_0";
    case 35: return "tq2_0";
    case 39: return "mxfp4";
    default: return nullptr;
  }
}

// Reads little-endian values from [pos, end); nothing is read past the end.
class Cursor {
 public:
  Cursor(const uint8_t* begin, size_t size) : begin_(begin), pos_(begin), end_(begin + size) {}

  size_t offset() const { return (size_t)(pos_ - begin_); }
  size_t remaining() const { return (size_t)(end_ - pos_); }
  const uint8_t* here() const { return pos_; }

  bool bytes(void* out, size_t n) {
    if (n > remaining()) return false;
    if (n > 0) std::memcpy(out, pos_, n);
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

 private:
  const uint8_t* begin_;
  const uint8_t* pos_;
  const uint8_t* end_;
};

// Parses the sections of one file image into a GgufFile's members; messages are prefixed with `where`.
class Parser {
 public:
  Parser(const uint8_t* data, size_t size, std::string where) : c_(data, size), where_(std::move(where)) {}

  Cursor& cursor() { return c_; }
  const std::string& where() const { return where_; }

  // "the file is truncated (<what> at byte N)".
  Status truncated(const std::string& what) const {
    return corrupt_file(where_ + "the file is truncated (" + what + " at byte " + std::to_string(c_.offset()) + ")");
  }
  // A failure of kind CorruptFile with the file prefix.
  Status corrupt(const std::string& what) const { return corrupt_file(where_ + what); }

  // The read_* functions take `what` as a callable returning the item's description, so that the
  // message is only built when a read fails (a vocabulary has a hundred thousand strings).
  template <class What>
  Status read_u32(uint32_t* v, const What& what) { return c_.u32(v) ? Status() : truncated(what()); }
  template <class What>
  Status read_u64(uint64_t* v, const What& what) { return c_.u64(v) ? Status() : truncated(what()); }

  // A string (uint64 length + bytes) as a view into the image; the length must fit in what remains.
  template <class What>
  Status read_string(std::string_view* out, const What& what) {
    const size_t at = c_.offset();
    uint64_t len = 0;
    if (!c_.u64(&len)) return truncated(what());
    if (len > c_.remaining()) {
      return corrupt(what() + " at byte " + std::to_string(at) + " has length " + std::to_string(len) +
                     ", past the end of the file (truncated or corrupt)");
    }
    *out = std::string_view(reinterpret_cast<const char*>(c_.here()), (size_t)len);
    c_.skip((size_t)len);
    return Status();
  }

  // One scalar of fixed-size `type` into `v` (widened into u/i or f).
  Status read_scalar(GgufValueType type, GgufValue* v, const std::string& key) {
    uint8_t raw[8] = {0};
    const size_t size = fixed_size(type);
    if (size == 0) return internal_error(where_ + "metadata key " + key + ": not a scalar type");
    if (!c_.bytes(raw, size)) return truncated("value of " + key);
    switch (type) {
      case GgufValueType::U8: v->u = raw[0]; v->i = raw[0]; break;
      case GgufValueType::I8: v->i = (int8_t)raw[0]; v->u = (uint64_t)v->i; break;
      case GgufValueType::BOOL: v->u = raw[0]; v->i = raw[0]; break;
      case GgufValueType::U16: { uint16_t x; std::memcpy(&x, raw, 2); v->u = x; v->i = x; break; }
      case GgufValueType::I16: { int16_t x; std::memcpy(&x, raw, 2); v->i = x; v->u = (uint64_t)(int64_t)x; break; }
      case GgufValueType::U32: { uint32_t x; std::memcpy(&x, raw, 4); v->u = x; v->i = x; break; }
      case GgufValueType::I32: { int32_t x; std::memcpy(&x, raw, 4); v->i = x; v->u = (uint64_t)(int64_t)x; break; }
      case GgufValueType::F32: { float x; std::memcpy(&x, raw, 4); v->f = x; break; }
      case GgufValueType::U64: { uint64_t x; std::memcpy(&x, raw, 8); v->u = x; v->i = (int64_t)x; break; }
      case GgufValueType::I64: { int64_t x; std::memcpy(&x, raw, 8); v->i = x; v->u = (uint64_t)x; break; }
      case GgufValueType::F64: { double x; std::memcpy(&x, raw, 8); v->f = x; break; }
      default: break;
    }
    if (type == GgufValueType::BOOL && v->u > 1) {
      return corrupt("metadata key " + key + " has a bool value " + std::to_string(v->u) + " that is neither 0 nor 1");
    }
    return Status();
  }

  // An array value: element type, count, elements (validated against the bytes that remain).
  Status read_array(GgufValue* v, const std::string& key) {
    uint32_t et = 0;
    uint64_t count = 0;
    PGI_RETURN_IF_ERROR(read_u32(&et, [&] { return "array type of " + key; }));
    if (!known_value_type(et)) {
      return corrupt("metadata key " + key + " is an array of unknown value type " + std::to_string(et));
    }
    if ((GgufValueType)et == GgufValueType::ARRAY) {
      return corrupt("metadata key " + key + " is an array of arrays, which is not supported");
    }
    PGI_RETURN_IF_ERROR(read_u64(&count, [&] { return "array length of " + key; }));
    v->array_type = (GgufValueType)et;
    v->array_count = count;
    auto too_long = [&] {
      return corrupt("metadata key " + key + ": an array of " + std::to_string(count) + " " +
                     value_type_name(v->array_type) + " values does not fit in the rest of the file " +
                     "(truncated or corrupt)");
    };
    if (v->array_type == GgufValueType::STRING) {
      // Each string is at least its 8-byte length.
      if (count > c_.remaining() / 8) return too_long();
      v->array_strings.reserve(reserve_count(count));
      for (uint64_t i = 0; i < count; ++i) {
        std::string_view s;
        PGI_RETURN_IF_ERROR(read_string(&s, [&] { return "element " + std::to_string(i) + " of " + key; }));
        v->array_strings.push_back(s);
      }
      return Status();
    }
    const size_t esize = fixed_size(v->array_type);
    if (count > c_.remaining() / esize) return too_long();
    v->array_data = count > 0 ? c_.here() : nullptr;
    if (v->array_type == GgufValueType::BOOL) {
      for (uint64_t i = 0; i < count; ++i) {
        if (v->array_data[i] > 1) {
          return corrupt("metadata key " + key + " has a bool element " + std::to_string(i) +
                         " that is neither 0 nor 1");
        }
      }
    }
    c_.skip((size_t)(count * esize));
    return Status();
  }

 private:
  Cursor c_;
  std::string where_;
};

}  // namespace

Status GgufFile::open(const std::string& path, std::unique_ptr<GgufFile>* out) {
  const std::string where = "\"" + path + "\": ";
  try {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int e = errno;
      if (e == ENOENT) return not_found(where + "cannot open: " + std::strerror(e));
      return io_error(where + "cannot open: " + std::strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      return io_error(where + "cannot stat: " + std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      return invalid_argument(where + (S_ISDIR(st.st_mode) ? "is a directory, not a GGUF file" : "not a regular file"));
    }
    if (st.st_size <= 0) {
      ::close(fd);
      return corrupt_file(where + "the file is empty");
    }
    if ((uint64_t)st.st_size > (uint64_t)std::numeric_limits<size_t>::max()) {
      ::close(fd);
      return io_error(where + "the file is too large to map");
    }
    const size_t size = (size_t)st.st_size;
    void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    const int map_errno = errno;
    ::close(fd);
    if (map == MAP_FAILED) return io_error(where + "cannot map: " + std::strerror(map_errno));
    return from_image(path, static_cast<const uint8_t*>(map), size, map, out);
  } catch (const std::exception&) {
    return out_of_memory(where + "out of memory");
  }
}

Status GgufFile::open_memory(const uint8_t* data, size_t size, const std::string& label,
                             std::unique_ptr<GgufFile>* out) {
  if (data == nullptr && size > 0) return invalid_argument("\"" + label + "\": no data");
  return from_image(label, data, size, nullptr, out);
}

Status GgufFile::from_image(const std::string& label, const uint8_t* data, size_t size, void* map,
                            std::unique_ptr<GgufFile>* out) {
  const std::string where = "\"" + label + "\": ";
  std::unique_ptr<GgufFile> f(new (std::nothrow) GgufFile());
  if (f == nullptr) {
    if (map != nullptr) munmap(map, size);
    return out_of_memory(where + "out of memory");
  }
  f->data_ = data;
  f->size_ = size;
  f->map_ = map;  // unmapped by the destructor, also when parsing fails
  try {
    f->path_ = label;
    PGI_RETURN_IF_ERROR(f->parse());
  } catch (const std::bad_alloc&) {
    return out_of_memory(where + "out of memory while reading the metadata");
  } catch (const std::exception& e) {
    return internal_error(where + "unexpected error: " + e.what());
  }
  *out = std::move(f);
  return Status::ok_status();
}

GgufFile::~GgufFile() {
  if (map_ != nullptr) munmap(map_, size_);
}

Status GgufFile::parse() {
  Parser p(data_, size_, "\"" + path_ + "\": ");
  Cursor& c = p.cursor();

  // Header.
  if (size_ == 0) return p.corrupt("the file is empty");
  // A short file that starts like the magic is truncated; anything else that starts differently is not GGUF.
  if (data_ == nullptr || std::memcmp(data_, "GGUF", std::min<size_t>(size_, 4)) != 0) {
    return p.corrupt("not a GGUF file (bad magic)");
  }
  uint32_t magic = 0;
  PGI_RETURN_IF_ERROR(p.read_u32(&magic, [&] { return std::string("magic"); }));
  if (magic != kMagic) return p.corrupt("not a GGUF file (bad magic)");
  PGI_RETURN_IF_ERROR(p.read_u32(&version_, [&] { return std::string("version"); }));
  if (version_ == 1) {
    return unsupported(p.where() +
                       "version 1 GGUF files are not supported (convert the model again with a current llama.cpp)");
  }
  if (version_ != 2 && version_ != 3) {
    const uint32_t swapped = __builtin_bswap32(version_);
    if (swapped == 2 || swapped == 3) return unsupported(p.where() + "big-endian GGUF files are not supported");
    return unsupported(p.where() + "unsupported GGUF version " + std::to_string(version_));
  }
  uint64_t n_tensors = 0, n_kv = 0;
  PGI_RETURN_IF_ERROR(p.read_u64(&n_tensors, [&] { return std::string("tensor count"); }));
  PGI_RETURN_IF_ERROR(p.read_u64(&n_kv, [&] { return std::string("metadata count"); }));
  const std::string does_not_fit = " does not fit in the rest of the file (truncated or corrupt)";
  if (n_kv > c.remaining() / kMinKvBytes) return p.corrupt("metadata count " + std::to_string(n_kv) + does_not_fit);
  if (n_tensors > (c.remaining() - n_kv * kMinKvBytes) / kMinTensorInfoBytes) {
    return p.corrupt("tensor count " + std::to_string(n_tensors) + does_not_fit);
  }

  // Metadata.
  key_order_.reserve(reserve_count(n_kv));
  kv_.reserve(reserve_count(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string_view key_view;
    PGI_RETURN_IF_ERROR(p.read_string(&key_view, [&] { return "metadata key " + std::to_string(k); }));
    if (key_view.empty()) return p.corrupt("metadata key " + std::to_string(k) + " is empty");
    std::string key(key_view);
    if (kv_.count(key)) return p.corrupt("duplicate metadata key " + key);
    uint32_t raw_type = 0;
    PGI_RETURN_IF_ERROR(p.read_u32(&raw_type, [&] { return "value type of " + key; }));
    if (!known_value_type(raw_type)) {
      return p.corrupt("metadata key " + key + " has unknown value type " + std::to_string(raw_type));
    }
    GgufValue v;
    v.type = (GgufValueType)raw_type;
    if (v.type == GgufValueType::STRING) {
      PGI_RETURN_IF_ERROR(p.read_string(&v.str, [&] { return "value of " + key; }));
    } else if (v.type == GgufValueType::ARRAY) {
      PGI_RETURN_IF_ERROR(p.read_array(&v, key));
    } else {
      PGI_RETURN_IF_ERROR(p.read_scalar(v.type, &v, key));
    }
    key_order_.push_back(key);
    kv_.emplace(std::move(key), std::move(v));
  }

  alignment_ = kDefaultAlignment;
  if (const GgufValue* a = find("general.alignment")) {
    if (a->type != GgufValueType::U32) {
      return p.corrupt(std::string("general.alignment must be a uint32, not a ") + value_type_name(a->type));
    }
    if (a->u == 0 || (a->u & (a->u - 1)) != 0) {
      return p.corrupt("general.alignment " + std::to_string(a->u) + " is not a power of two");
    }
    alignment_ = a->u;
  }

  // Tensor infos. The count was checked against the whole rest of the file; check it again now that
  // the metadata is consumed, before reserving.
  if (n_tensors > c.remaining() / kMinTensorInfoBytes) {
    return p.corrupt("tensor count " + std::to_string(n_tensors) + does_not_fit);
  }
  tensors_.reserve(reserve_count(n_tensors));
  tensor_index_.reserve(reserve_count(n_tensors));
  for (uint64_t t = 0; t < n_tensors; ++t) {
    GgufTensor info;
    std::string_view name;
    PGI_RETURN_IF_ERROR(p.read_string(&name, [&] { return "name of tensor " + std::to_string(t); }));
    if (name.empty()) return p.corrupt("tensor " + std::to_string(t) + " has an empty name");
    info.name = std::string(name);
    if (tensor_index_.count(info.name)) return p.corrupt("duplicate tensor " + info.name);
    uint32_t n_dims = 0;
    PGI_RETURN_IF_ERROR(p.read_u32(&n_dims, [&] { return "dimension count of tensor " + info.name; }));
    if (n_dims < 1 || n_dims > 4) {
      return p.corrupt("tensor " + info.name + " has " + std::to_string(n_dims) + " dimensions (1 to 4 allowed)");
    }
    info.n_dims = (int)n_dims;
    uint64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = 0;
      PGI_RETURN_IF_ERROR(p.read_u64(&ne, [&] { return "dimensions of tensor " + info.name; }));
      if (ne == 0 || ne > (uint64_t)std::numeric_limits<int64_t>::max()) {
        return p.corrupt("tensor " + info.name + " has an invalid dimension " + std::to_string((int64_t)ne));
      }
      if (n_elements > (uint64_t)std::numeric_limits<int64_t>::max() / ne) {
        return p.corrupt("tensor " + info.name + " has too many elements (the dimensions overflow)");
      }
      n_elements *= ne;
      info.ne[d] = (int64_t)ne;
    }
    uint32_t raw_type = 0;
    PGI_RETURN_IF_ERROR(p.read_u32(&raw_type, [&] { return "type of tensor " + info.name; }));
    const TypeTraits* tr = type_traits_raw(raw_type);
    if (tr == nullptr) {
      const char* known = ggml_type_name(raw_type);
      return unsupported(p.where() + "tensor " + info.name + " has unsupported type " + std::to_string(raw_type) +
                         (known ? std::string(" (") + known + ")" : std::string()));
    }
    if (raw_type == (uint32_t)TensorType::Q8_K) {
      return unsupported(p.where() + "tensor " + info.name + " has unsupported type " + std::to_string(raw_type) +
                         " (q8_K, which is for activations only)");
    }
    info.type = (TensorType)raw_type;
    if (info.ne[0] % tr->block_elems != 0) {
      return p.corrupt("tensor " + info.name + " has rows of " + std::to_string(info.ne[0]) +
                       " values, not a multiple of the " + tr->name + " block size " +
                       std::to_string(tr->block_elems));
    }
    const uint64_t blocks = n_elements / (uint64_t)tr->block_elems;
    if (blocks > (uint64_t)std::numeric_limits<size_t>::max() / tr->block_bytes) {
      return p.corrupt("tensor " + info.name + " is too large");
    }
    info.n_bytes = (size_t)(blocks * tr->block_bytes);
    PGI_RETURN_IF_ERROR(p.read_u64(&info.offset, [&] { return "offset of tensor " + info.name; }));
    if (info.offset % alignment_ != 0) {
      return p.corrupt("tensor " + info.name + " at offset " + std::to_string(info.offset) + " is not aligned to " +
                       std::to_string(alignment_) + " bytes");
    }
    tensor_index_.emplace(info.name, tensors_.size());
    tensors_.push_back(std::move(info));
  }

  // The data section starts at the end of the tensor infos, padded to the alignment.
  const uint64_t infos_end = c.offset();
  const uint64_t data_start = (infos_end + alignment_ - 1) / alignment_ * alignment_;
  const uint64_t avail = size_ > data_start ? size_ - data_start : 0;
  for (GgufTensor& t : tensors_) {
    if (t.offset > avail || t.n_bytes > avail - t.offset) {
      return p.corrupt("tensor " + t.name + " extends past the end of the file");
    }
    t.data = data_ + data_start + t.offset;
  }
  // No two tensors may share bytes: sorted by offset, each must end before the next begins.
  std::vector<size_t> order(tensors_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return tensors_[a].offset != tensors_[b].offset ? tensors_[a].offset < tensors_[b].offset : a < b;
  });
  for (size_t i = 1; i < order.size(); ++i) {
    const GgufTensor& prev = tensors_[order[i - 1]];
    const GgufTensor& cur = tensors_[order[i]];
    if (cur.offset < prev.offset + prev.n_bytes) {
      return p.corrupt("tensor " + cur.name + " overlaps tensor " + prev.name);
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

namespace {

// Records in *err (when given) that `key` holds something other than `expected`; returns false.
bool mismatch(Status* err, const std::string& path, std::string_view key, const std::string& problem) {
  if (err != nullptr) *err = corrupt_file("\"" + path + "\": metadata key " + std::string(key) + " " + problem);
  return false;
}

// "is an int32, not a string".
std::string is_a(const GgufValue& v, const char* expected) {
  const char* name = value_type_name(v.type);
  const bool vowel = name[0] == 'a' || name[0] == 'i';
  return std::string(vowel ? "is an " : "is a ") + name + ", not " + expected;
}

}  // namespace

bool GgufFile::get_string(std::string_view key, std::string* out, Status* err) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return false;
  if (v->type != GgufValueType::STRING) return mismatch(err, path_, key, is_a(*v, "a string"));
  *out = std::string(v->str);
  return true;
}

bool GgufFile::get_u64(std::string_view key, uint64_t* out, Status* err) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return false;
  if (!is_integer_type(v->type)) return mismatch(err, path_, key, is_a(*v, "an integer"));
  if (is_signed_type(v->type) && v->i < 0) {
    return mismatch(err, path_, key, "is " + std::to_string(v->i) + ", not a non-negative integer");
  }
  *out = v->u;
  return true;
}

bool GgufFile::get_i64(std::string_view key, int64_t* out, Status* err) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return false;
  if (!is_integer_type(v->type)) return mismatch(err, path_, key, is_a(*v, "an integer"));
  if (!is_signed_type(v->type) && v->u > (uint64_t)std::numeric_limits<int64_t>::max()) {
    return mismatch(err, path_, key, "is " + std::to_string(v->u) + ", too large for a signed 64-bit integer");
  }
  *out = v->i;
  return true;
}

bool GgufFile::get_f64(std::string_view key, double* out, Status* err) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return false;
  if (v->type == GgufValueType::F32 || v->type == GgufValueType::F64) {
    *out = v->f;
  } else if (is_integer_type(v->type)) {
    *out = is_signed_type(v->type) ? (double)v->i : (double)v->u;
  } else {
    return mismatch(err, path_, key, is_a(*v, "a number"));
  }
  return true;
}

bool GgufFile::get_bool(std::string_view key, bool* out, Status* err) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return false;
  if (v->type != GgufValueType::BOOL) return mismatch(err, path_, key, is_a(*v, "a bool"));
  *out = v->u != 0;
  return true;
}

}  // namespace pginfer
