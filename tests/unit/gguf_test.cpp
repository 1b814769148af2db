// tests/unit/gguf_test.cpp: the GGUF reader on well-formed files (every metadata type, every tensor type,
// versions 2 and 3, custom alignment), every way a file is refused (each with a clean, prefixed message),
// the writer's round trip and refusals, the tensor type table, and the real tiny llama model.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cctype>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "engine/gguf.h"
#include "engine/gguf_writer.h"

namespace pginfer {
namespace {

using VT = GgufValueType;

// A path under the temporary directory, unique to this process.
std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("pginfer-gguf-test-" + std::to_string(getpid()) + "-" + name)).string();
}

// The bytes of a file.
std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Builds GGUF images byte by byte, so tests can write what no writer would.
class Image {
 public:
  Image& u32(uint32_t v) { return raw(&v, 4); }
  Image& u64(uint64_t v) { return raw(&v, 8); }
  template <class T>
  Image& val(T v) { return raw(&v, sizeof v); }
  Image& str(const std::string& s) { u64(s.size()); return raw(s.data(), s.size()); }
  Image& raw(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    bytes.insert(bytes.end(), b, b + n);
    return *this;
  }
  Image& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    return u32(0x46554747).u32(version).u64(n_tensors).u64(n_kv);
  }
  // A key and its value type; the value follows.
  Image& kv(const std::string& key, VT type) { return str(key).u32((uint32_t)type); }
  Image& kv_u32(const std::string& key, uint32_t v) { return kv(key, VT::U32).u32(v); }
  // A key holding an array of `count` elements of `type`; the elements follow.
  Image& arr(const std::string& key, VT type, uint64_t count) {
    return kv(key, VT::ARRAY).u32((uint32_t)type).u64(count);
  }
  Image& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32((uint32_t)ne.size());
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
  Image& pad(size_t align = 32) {
    while (bytes.size() % align) bytes.push_back(0);
    return *this;
  }
  Image& zeros(size_t n) {
    bytes.insert(bytes.end(), n, 0);
    return *this;
  }
  Status open(std::unique_ptr<GgufFile>* out = nullptr) const {
    std::unique_ptr<GgufFile> f;
    Status st = GgufFile::open_memory(bytes.data(), bytes.size(), "test.gguf", &f);
    if (out) *out = std::move(f);
    return st;
  }
  std::vector<uint8_t> bytes;
};

// A small valid file: two keys, two F32 tensors of 8 and 2x8 values.
Image valid_image() {
  Image im;
  im.header(2, 2).kv_u32("a.count", 7);
  im.kv("general.architecture", VT::STRING).str("llama");
  im.tensor("t0", {8}, 0, 0).tensor("t1", {8, 2}, 0, 32).pad().zeros(32 + 64);
  return im;
}

// A valid file with every scalar type, an array of every element type, and tensors of three types.
Image all_types_image() {
  Image im;
  im.header(3, 26);
  im.kv("u8", VT::U8).val<uint8_t>(200);
  im.kv("i8", VT::I8).val<int8_t>(-100);
  im.kv("u16", VT::U16).val<uint16_t>(60000);
  im.kv("i16", VT::I16).val<int16_t>(-30000);
  im.kv("u32", VT::U32).val<uint32_t>(4000000000u);
  im.kv("i32", VT::I32).val<int32_t>(-2000000000);
  im.kv("f32", VT::F32).val<float>(1.5f);
  im.kv("bool", VT::BOOL).val<uint8_t>(1);
  im.kv("str", VT::STRING).str("h\xc3\xa9llo");
  im.kv("u64", VT::U64).val<uint64_t>(std::numeric_limits<uint64_t>::max());
  im.kv("i64", VT::I64).val<int64_t>(std::numeric_limits<int64_t>::min());
  im.kv("f64", VT::F64).val<double>(-0.125);
  im.arr("a.u8", VT::U8, 3).val<uint8_t>(1).val<uint8_t>(2).val<uint8_t>(255);
  im.arr("a.i8", VT::I8, 2).val<int8_t>(-1).val<int8_t>(1);
  im.arr("a.u16", VT::U16, 2).val<uint16_t>(1).val<uint16_t>(65535);
  im.arr("a.i16", VT::I16, 1).val<int16_t>(-7);
  im.arr("a.u32", VT::U32, 2).val<uint32_t>(0).val<uint32_t>(123456789);
  im.arr("a.i32", VT::I32, 3).val<int32_t>(1).val<int32_t>(-2).val<int32_t>(3);
  im.arr("a.f32", VT::F32, 2).val<float>(0.5f).val<float>(-2.0f);
  im.arr("a.bool", VT::BOOL, 3).val<uint8_t>(0).val<uint8_t>(1).val<uint8_t>(1);
  im.arr("a.u64", VT::U64, 1).val<uint64_t>(1ull << 63);
  im.arr("a.i64", VT::I64, 2).val<int64_t>(-1).val<int64_t>(1ll << 40);
  im.arr("a.f64", VT::F64, 1).val<double>(3.25);
  im.arr("a.str", VT::STRING, 3).str("x").str("").str("yz");
  im.arr("a.empty", VT::U32, 0);
  im.arr("a.empty_str", VT::STRING, 0);
  im.tensor("f32", {4, 2}, (uint32_t)TensorType::F32, 0);    // 32 bytes
  im.tensor("q8", {32}, (uint32_t)TensorType::Q8_0, 32);     // 34 bytes
  im.tensor("q4k", {256}, (uint32_t)TensorType::Q4_K, 96);   // 144 bytes
  im.pad();
  for (int i = 0; i < 240; ++i) im.bytes.push_back((uint8_t)(i * 7 + 1));
  return im;
}

// Checks the house style of a refusal: prefixed by the quoted label, lowercase, no trailing period.
void expect_clean_message(const Status& st, const std::string& label = "test.gguf") {
  const std::string prefix = "\"" + label + "\": ";
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message().rfind(prefix, 0), 0u) << st.message();
  ASSERT_GT(st.message().size(), prefix.size()) << st.message();
  const char first = st.message()[prefix.size()];
  EXPECT_FALSE(std::isupper((unsigned char)first)) << st.message();
  EXPECT_NE(st.message().back(), '.') << st.message();
}

void expect_refused(const Image& im, const std::string& fragment, StatusCode code = StatusCode::CorruptFile) {
  Status st = im.open();
  ASSERT_FALSE(st.ok()) << "expected a refusal mentioning: " << fragment;
  EXPECT_NE(st.message().find(fragment), std::string::npos) << st.message();
  EXPECT_EQ(st.code(), code) << st.message();
  expect_clean_message(st);
}

// --- the tensor type table ---

TEST(TensorTypes, TableMatchesGgml) {
  struct Row { TensorType type; const char* name; int elems; size_t bytes; };
  const Row rows[] = {
      {TensorType::F32, "f32", 1, 4},       {TensorType::F16, "f16", 1, 2},
      {TensorType::BF16, "bf16", 1, 2},     {TensorType::Q4_0, "q4_0", 32, 18},
      {TensorType::Q8_0, "q8_0", 32, 34},   {TensorType::Q4_K, "q4_K", 256, 144},
      {TensorType::Q5_K, "q5_K", 256, 176}, {TensorType::Q6_K, "q6_K", 256, 210},
      {TensorType::Q8_K, "q8_K", 256, 292},
  };
  for (const Row& r : rows) {
    const TypeTraits* t = type_traits(r.type);
    ASSERT_NE(t, nullptr) << r.name;
    EXPECT_STREQ(t->name, r.name);
    EXPECT_EQ(t->block_elems, r.elems) << r.name;
    EXPECT_EQ(t->block_bytes, r.bytes) << r.name;
    EXPECT_EQ(type_traits_raw((uint32_t)r.type), t);
    EXPECT_STREQ(type_name(r.type), r.name);
  }
  EXPECT_EQ((uint32_t)TensorType::BF16, 30u);
  for (uint32_t raw : {3u, 6u, 7u, 9u, 10u, 11u, 16u, 29u, 31u, 99u, 0xffffffffu}) {
    EXPECT_EQ(type_traits_raw(raw), nullptr) << raw;
  }
  EXPECT_STREQ(type_name((TensorType)99), "unknown");
}

TEST(TensorTypes, ParsesNamesCaseInsensitively) {
  TensorType t = TensorType::F32;
  EXPECT_TRUE(parse_type_name("Q4_K", &t));
  EXPECT_EQ(t, TensorType::Q4_K);
  EXPECT_TRUE(parse_type_name("q4_k", &t));
  EXPECT_EQ(t, TensorType::Q4_K);
  EXPECT_TRUE(parse_type_name("bf16", &t));
  EXPECT_EQ(t, TensorType::BF16);
  const char* ok[] = {"F32", "f16", "BF16", "Q8_0", "q4_0", "Q5_K", "q6_K"};
  for (const char* name : ok) EXPECT_TRUE(parse_type_name(name, &t)) << name;
  const char* bad[] = {"Q8_K", "q8_k", "", "q4", "q4_K_M", "f32 ", "Q4_1", "f3"};
  for (const char* name : bad) EXPECT_FALSE(parse_type_name(name, &t)) << name;
  EXPECT_FALSE(parse_type_name(nullptr, &t));
}

TEST(TensorTypes, RowBytes) {
  EXPECT_EQ(row_bytes(TensorType::F32, 10), 40u);
  EXPECT_EQ(row_bytes(TensorType::BF16, 10), 20u);
  EXPECT_EQ(row_bytes(TensorType::Q8_0, 64), 68u);
  EXPECT_EQ(row_bytes(TensorType::Q4_K, 512), 288u);
  EXPECT_EQ(row_bytes(TensorType::Q6_K, 256), 210u);
  EXPECT_EQ(row_bytes((TensorType)99, 256), 0u);
  EXPECT_EQ(row_bytes(TensorType::F32, -4), 0u);
}

// --- reading well-formed files ---

TEST(Gguf, ReadsAValidImage) {
  const Image im = valid_image();
  std::unique_ptr<GgufFile> f;
  ASSERT_TRUE(im.open(&f).ok());
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->file_size(), im.bytes.size());
  EXPECT_EQ(f->path(), "test.gguf");
  EXPECT_EQ(f->keys(), (std::vector<std::string>{"a.count", "general.architecture"}));
  uint64_t count = 0;
  EXPECT_TRUE(f->get_u64("a.count", &count));
  EXPECT_EQ(count, 7u);
  std::string arch;
  EXPECT_TRUE(f->get_string("general.architecture", &arch));
  EXPECT_EQ(arch, "llama");
  ASSERT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->tensors()[0].name, "t0");
  const GgufTensor* t1 = f->tensor("t1");
  ASSERT_NE(t1, nullptr);
  EXPECT_EQ(t1->n_dims, 2);
  EXPECT_EQ(t1->ne[0], 8);
  EXPECT_EQ(t1->ne[1], 2);
  EXPECT_EQ(t1->ne[2], 1);
  EXPECT_EQ(t1->n_elements(), 16);
  EXPECT_EQ(t1->n_rows(), 2);
  EXPECT_EQ(t1->n_bytes, 64u);
  EXPECT_EQ(t1->offset, 32u);
  // The data section starts at the end of the infos padded to 32 bytes: the image's last 96 bytes.
  EXPECT_EQ(t1->data, im.bytes.data() + im.bytes.size() - 64);
  EXPECT_EQ(f->tensor("t0")->data, im.bytes.data() + im.bytes.size() - 96);
  EXPECT_EQ(f->tensor("missing"), nullptr);
  EXPECT_EQ(f->find("missing"), nullptr);
}

TEST(Gguf, ReadsVersion2) {
  Image im = valid_image();
  im.bytes[4] = 2;
  std::unique_ptr<GgufFile> f;
  ASSERT_TRUE(im.open(&f).ok());
  EXPECT_EQ(f->version(), 2u);
}

TEST(Gguf, ReadsAFileWithoutTensorsOrMetadata) {
  Image im;
  im.header(0, 0);
  std::unique_ptr<GgufFile> f;
  ASSERT_TRUE(im.open(&f).ok());
  EXPECT_TRUE(f->keys().empty());
  EXPECT_TRUE(f->tensors().empty());
}

TEST(Gguf, ReadsEveryMetadataType) {
  const Image im = all_types_image();
  std::unique_ptr<GgufFile> f;
  Status st = im.open(&f);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(f->keys().size(), 26u);
  EXPECT_EQ(f->keys()[0], "u8");
  EXPECT_EQ(f->keys()[25], "a.empty_str");

  EXPECT_EQ(f->find("u8")->type, VT::U8);
  EXPECT_EQ(f->find("u8")->u, 200u);
  EXPECT_EQ(f->find("i8")->i, -100);
  EXPECT_EQ(f->find("u16")->u, 60000u);
  EXPECT_EQ(f->find("i16")->i, -30000);
  EXPECT_EQ(f->find("u32")->u, 4000000000u);
  EXPECT_EQ(f->find("i32")->i, -2000000000);
  EXPECT_EQ(f->find("f32")->f, 1.5);
  EXPECT_EQ(f->find("bool")->u, 1u);
  EXPECT_EQ(f->find("str")->str, "h\xc3\xa9llo");
  EXPECT_EQ(f->find("u64")->u, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(f->find("i64")->i, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f->find("f64")->f, -0.125);

  const GgufValue* a = f->find("a.u8");
  EXPECT_EQ(a->type, VT::ARRAY);
  EXPECT_EQ(a->array_type, VT::U8);
  ASSERT_EQ(a->array_count, 3u);
  EXPECT_EQ(a->array_data[2], 255);
  int32_t i32[3];
  a = f->find("a.i32");
  ASSERT_EQ(a->array_count, 3u);
  std::memcpy(i32, a->array_data, sizeof i32);
  EXPECT_EQ(i32[1], -2);
  float f32[2];
  std::memcpy(f32, f->find("a.f32")->array_data, sizeof f32);
  EXPECT_EQ(f32[1], -2.0f);
  uint64_t u64 = 0;
  std::memcpy(&u64, f->find("a.u64")->array_data, 8);
  EXPECT_EQ(u64, 1ull << 63);
  double f64 = 0;
  std::memcpy(&f64, f->find("a.f64")->array_data, 8);
  EXPECT_EQ(f64, 3.25);
  EXPECT_EQ(f->find("a.bool")->array_data[1], 1);
  a = f->find("a.str");
  EXPECT_EQ(a->array_type, VT::STRING);
  ASSERT_EQ(a->array_count, 3u);
  ASSERT_EQ(a->array_strings.size(), 3u);
  EXPECT_EQ(a->array_strings[0], "x");
  EXPECT_EQ(a->array_strings[1], "");
  EXPECT_EQ(a->array_strings[2], "yz");
  EXPECT_EQ(f->find("a.empty")->array_count, 0u);
  EXPECT_EQ(f->find("a.empty_str")->array_strings.size(), 0u);

  ASSERT_EQ(f->tensors().size(), 3u);
  EXPECT_EQ(f->tensor("q8")->type, TensorType::Q8_0);
  EXPECT_EQ(f->tensor("q8")->n_bytes, 34u);
  EXPECT_EQ(f->tensor("q4k")->type, TensorType::Q4_K);
  EXPECT_EQ(f->tensor("q4k")->n_bytes, 144u);
  EXPECT_EQ(f->tensor("q4k")->data[0], (uint8_t)(96 * 7 + 1));
  EXPECT_EQ(f->tensor("f32")->data[31], (uint8_t)(31 * 7 + 1));
}

TEST(Gguf, TypedGettersConvertWhatFits) {
  const Image im = all_types_image();  // the file's views point into it
  std::unique_ptr<GgufFile> f;
  ASSERT_TRUE(im.open(&f).ok());
  uint64_t u = 0;
  int64_t i = 0;
  double d = 0;
  bool b = false;
  std::string s;
  Status err;

  // Unsigned: any integer type holding a non-negative value.
  EXPECT_TRUE(f->get_u64("u8", &u));
  EXPECT_EQ(u, 200u);
  EXPECT_TRUE(f->get_u64("u64", &u));
  EXPECT_EQ(u, std::numeric_limits<uint64_t>::max());
  u = 5;
  EXPECT_FALSE(f->get_u64("i8", &u, &err));
  EXPECT_EQ(u, 5u);
  EXPECT_EQ(err.code(), StatusCode::CorruptFile);
  EXPECT_NE(err.message().find("metadata key i8 is -100"), std::string::npos) << err.message();
  expect_clean_message(err);
  EXPECT_FALSE(f->get_u64("f32", &u, &err));
  EXPECT_NE(err.message().find("is a float32, not an integer"), std::string::npos) << err.message();
  EXPECT_FALSE(f->get_u64("str", &u));  // no err pointer: just false

  // Signed: any integer that fits.
  EXPECT_TRUE(f->get_i64("i64", &i));
  EXPECT_EQ(i, std::numeric_limits<int64_t>::min());
  EXPECT_TRUE(f->get_i64("u32", &i));
  EXPECT_EQ(i, 4000000000);
  EXPECT_TRUE(f->get_i64("i16", &i));
  EXPECT_EQ(i, -30000);
  EXPECT_FALSE(f->get_i64("u64", &i, &err));
  EXPECT_NE(err.message().find("too large"), std::string::npos) << err.message();
  EXPECT_FALSE(f->get_i64("bool", &i, &err));
  EXPECT_NE(err.message().find("is a bool, not an integer"), std::string::npos) << err.message();

  // Floating point: floats and integers.
  EXPECT_TRUE(f->get_f64("f32", &d));
  EXPECT_EQ(d, 1.5);
  EXPECT_TRUE(f->get_f64("f64", &d));
  EXPECT_EQ(d, -0.125);
  EXPECT_TRUE(f->get_f64("i32", &d));
  EXPECT_EQ(d, -2000000000.0);
  EXPECT_TRUE(f->get_f64("u64", &d));
  EXPECT_EQ(d, 18446744073709551615.0);
  EXPECT_FALSE(f->get_f64("str", &d, &err));
  EXPECT_NE(err.message().find("is a string, not a number"), std::string::npos) << err.message();

  // Strings and bools: only themselves.
  EXPECT_TRUE(f->get_string("str", &s));
  EXPECT_EQ(s, "h\xc3\xa9llo");
  EXPECT_FALSE(f->get_string("u8", &s, &err));
  EXPECT_NE(err.message().find("is a uint8, not a string"), std::string::npos) << err.message();
  EXPECT_FALSE(f->get_string("a.str", &s, &err));
  EXPECT_NE(err.message().find("is an array, not a string"), std::string::npos) << err.message();
  EXPECT_TRUE(f->get_bool("bool", &b));
  EXPECT_TRUE(b);
  EXPECT_FALSE(f->get_bool("u8", &b, &err));
  EXPECT_NE(err.message().find("not a bool"), std::string::npos) << err.message();

  // Absent keys: false, and *err untouched.
  err = Status();
  EXPECT_FALSE(f->get_u64("absent", &u, &err));
  EXPECT_FALSE(f->get_i64("absent", &i, &err));
  EXPECT_FALSE(f->get_f64("absent", &d, &err));
  EXPECT_FALSE(f->get_string("absent", &s, &err));
  EXPECT_FALSE(f->get_bool("absent", &b, &err));
  EXPECT_TRUE(err.ok());
}

TEST(Gguf, HonoursACustomAlignment) {
  Image im;
  im.header(2, 1).kv_u32("general.alignment", 64);
  im.tensor("a", {8}, 0, 0).tensor("b", {8}, 0, 64).pad(64).zeros(64 + 32);
  std::unique_ptr<GgufFile> f;
  Status st = im.open(&f);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ((size_t)(f->tensor("a")->data - im.bytes.data()) % 64, 0u);
  EXPECT_EQ(f->tensor("b")->data, im.bytes.data() + im.bytes.size() - 32);

  // 32 is aligned for the default but not for 64.
  Image mis;
  mis.header(1, 1).kv_u32("general.alignment", 64);
  mis.tensor("a", {8}, 0, 32).pad(64).zeros(64);
  expect_refused(mis, "tensor a at offset 32 is not aligned to 64 bytes");
}

TEST(Gguf, DataSectionStartsAfterThePadding) {
  // 32 bytes of data right after the infos would fit only if the data section were not padded.
  Image im;
  im.header(1, 0).tensor("t", {8}, 0, 0);
  ASSERT_NE(im.bytes.size() % 32, 0u);
  im.zeros(32);
  expect_refused(im, "tensor t extends past the end of the file");
  Image ok;
  ok.header(1, 0).tensor("t", {8}, 0, 0).pad().zeros(32);
  EXPECT_TRUE(ok.open().ok());
}

// --- refusals ---

TEST(Gguf, EveryTruncationIsACleanError) {
  for (const Image& full : {valid_image(), all_types_image()}) {
    for (size_t len = 0; len < full.bytes.size(); ++len) {
      // A fresh allocation of exactly `len` bytes, so that AddressSanitizer sees any read past it.
      std::vector<uint8_t> cut(full.bytes.begin(), full.bytes.begin() + len);
      std::unique_ptr<GgufFile> f;
      Status st = GgufFile::open_memory(cut.data(), cut.size(), "test.gguf", &f);
      EXPECT_FALSE(st.ok()) << "prefix of " << len << " bytes was accepted";
      EXPECT_EQ(f, nullptr);
      expect_clean_message(st);
    }
  }
}

TEST(Gguf, RefusesBadHeaders) {
  expect_refused(Image(), "the file is empty");
  Image im = valid_image();
  im.bytes[0] = 'X';
  expect_refused(im, "not a GGUF file (bad magic)");
  im.bytes.assign({'P', 'K'});
  expect_refused(im, "bad magic");
  im.bytes.assign({'G', 'G', 'U'});
  expect_refused(im, "truncated");
  im = valid_image();
  im.bytes[4] = 1;
  expect_refused(im, "version 1 GGUF files are not supported", StatusCode::Unsupported);
  im.bytes[4] = 99;
  expect_refused(im, "unsupported GGUF version 99", StatusCode::Unsupported);
  im.bytes[4] = 0;
  im.bytes[7] = 3;
  expect_refused(im, "big-endian", StatusCode::Unsupported);
  expect_refused(Image().header(0, 1ull << 60), "metadata count 1152921504606846976 does not fit");
  expect_refused(Image().header(1ull << 60, 0), "tensor count 1152921504606846976 does not fit");
  expect_refused(Image().header(~0ull, ~0ull), "does not fit");
  // Counts just beyond what the bytes can hold.
  expect_refused(Image().header(0, 2).kv_u32("k", 1), "metadata count 2");
  expect_refused(Image().header(2, 0).tensor("t", {8}, 0, 0), "tensor count 2");
  // Metadata that leaves too little room for the tensor count.
  expect_refused(Image().header(1, 1).kv(std::string(40, 'k'), VT::U8).val<uint8_t>(1), "tensor count 1");
}

TEST(Gguf, RefusesBadMetadata) {
  expect_refused(Image().header(0, 1).u64(1000).raw("ab", 2).zeros(20), "metadata key 0 at byte 24 has length 1000");
  expect_refused(Image().header(0, 1).u64(~0ull).zeros(20), "past the end of the file");
  expect_refused(Image().header(0, 1).str("").u32(4).u32(1), "metadata key 0 is empty");
  expect_refused(Image().header(0, 1).kv("k", VT::STRING).u64(1ull << 40), "value of k at byte");
  expect_refused(Image().header(0, 1).kv("k", VT::STRING).u64(5).raw("abcd", 4), "past the end of the file");
  expect_refused(Image().header(0, 1).arr("k", VT::U32, 1ull << 61), "array of 2305843009213693952 uint32 values");
  expect_refused(Image().header(0, 1).arr("k", VT::U64, ~0ull >> 3).zeros(16), "does not fit");
  expect_refused(Image().header(0, 1).arr("k", VT::U8, 5).zeros(4), "does not fit");
  expect_refused(Image().header(0, 1).arr("k", VT::STRING, 1ull << 60), "array of 1152921504606846976 string");
  expect_refused(Image().header(0, 1).arr("k", VT::STRING, 3).str("a").str("b").zeros(4), "truncated");
  expect_refused(Image().header(0, 1).arr("k", VT::STRING, 2).str("a").u64(100).zeros(8), "element 1 of k");
  expect_refused(Image().header(0, 1).arr("k", VT::ARRAY, 1).u32(4).u64(1).u32(5), "array of arrays");
  expect_refused(Image().header(0, 1).arr("k", (VT)13, 1).u32(0), "array of unknown value type 13");
  expect_refused(Image().header(0, 1).kv("k", (VT)77).u32(0), "metadata key k has unknown value type 77");
  expect_refused(Image().header(0, 1).kv("k", VT::BOOL).val<uint8_t>(2), "bool value 2 that is neither 0 nor 1");
  expect_refused(Image().header(0, 1).arr("k", VT::BOOL, 3).val<uint8_t>(1).val<uint8_t>(0).val<uint8_t>(255),
                 "bool element 2 that is neither 0 nor 1");
  expect_refused(Image().header(0, 2).kv_u32("k", 1).kv_u32("k", 2), "duplicate metadata key k");
  expect_refused(Image().header(0, 1).kv_u32("general.alignment", 0), "general.alignment 0 is not a power of two");
  expect_refused(Image().header(0, 1).kv_u32("general.alignment", 3), "general.alignment 3 is not a power of two");
  expect_refused(Image().header(0, 1).kv_u32("general.alignment", 96), "not a power of two");
  expect_refused(Image().header(0, 1).kv("general.alignment", VT::STRING).str("x"), "must be a uint32, not a string");
  expect_refused(Image().header(0, 1).kv("general.alignment", VT::U64).u64(32), "must be a uint32, not a uint64");
  expect_refused(Image().header(0, 1).kv("k", VT::F64).zeros(7), "truncated (value of k");
}

TEST(Gguf, RefusesBadTensors) {
  auto one = [](const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    Image im;
    im.header(1, 0).tensor(name, ne, type, offset).pad().zeros(64);
    return im;
  };
  EXPECT_TRUE(one("t", {8}, 0, 0).open().ok());
  expect_refused(one("t", {}, 0, 0), "tensor t has 0 dimensions (1 to 4 allowed)");
  expect_refused(one("t", {1, 1, 1, 1, 1}, 0, 0), "tensor t has 5 dimensions");
  expect_refused(one("t", {8, 0}, 0, 0), "tensor t has an invalid dimension 0");
  expect_refused(one("t", {8, ~0ull}, 0, 0), "tensor t has an invalid dimension -1");
  expect_refused(one("t", {1ull << 63}, 0, 0), "invalid dimension");
  expect_refused(one("t", {1ull << 40, 1ull << 40}, 0, 0), "too many elements");
  expect_refused(one("t", {1ull << 62, 2}, 0, 0), "too many elements");
  expect_refused(one("t", {32, 1ull << 31, 1ull << 31}, 0, 0), "too many elements");
  // Largest product that does not overflow, but whose bytes are not in the file.
  expect_refused(one("t", {1ull << 31, 1ull << 31}, 1, 0), "extends past the end of the file");
  // ... and one whose byte count does not fit in a size_t.
  expect_refused(one("t", {1ull << 31, 1ull << 31}, 0, 0), "tensor t is too large");
  expect_refused(one("t", {33}, 8, 0), "tensor t has rows of 33 values, not a multiple of the q8_0 block size 32");
  expect_refused(one("t", {128, 2}, 12, 0), "not a multiple of the q4_K block size 256");
  expect_refused(one("t", {32}, 99, 0), "tensor t has unsupported type 99", StatusCode::Unsupported);
  expect_refused(one("t", {32}, 3, 0), "tensor t has unsupported type 3 (q4_1)", StatusCode::Unsupported);
  expect_refused(one("t", {256}, 15, 0), "unsupported type 15 (q8_K", StatusCode::Unsupported);
  expect_refused(one("t", {8}, 0, 4), "tensor t at offset 4 is not aligned to 32 bytes");
  expect_refused(one("blk.3.ffn_up.weight", {64}, 0, 0), "tensor blk.3.ffn_up.weight extends past the end of the file");
  expect_refused(one("t", {8}, 0, 64), "tensor t extends past the end of the file");
  expect_refused(one("t", {8}, 0, 1ull << 62), "extends past the end");
  expect_refused(one("t", {8}, 0, ~0ull - 31), "extends past the end");  // offset + size overflows
  expect_refused(one("", {8}, 0, 0), "tensor 0 has an empty name");
  expect_refused(Image().header(1, 0).u64(1ull << 50).zeros(40), "name of tensor 0 at byte 24 has length");

  Image dup;
  dup.header(2, 0).tensor("t", {8}, 0, 0).tensor("t", {8}, 0, 32).pad().zeros(64);
  expect_refused(dup, "duplicate tensor t");
  Image overlap;
  overlap.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad().zeros(96);
  expect_refused(overlap, "tensor b overlaps tensor a");
  Image same;
  same.header(2, 0).tensor("a", {8}, 0, 32).tensor("b", {8}, 0, 32).pad().zeros(96);
  expect_refused(same, "tensor b overlaps tensor a");
  Image reversed;  // overlap found whatever the order of the infos
  reversed.header(2, 0).tensor("late", {8}, 0, 32).tensor("early", {16}, 0, 0).pad().zeros(96);
  expect_refused(reversed, "tensor late overlaps tensor early");
  Image adjacent;
  adjacent.header(2, 0).tensor("a", {8}, 0, 32).tensor("b", {8}, 0, 0).pad().zeros(64);
  EXPECT_TRUE(adjacent.open().ok());
}

TEST(Gguf, RefusesFilesThatAreNotFiles) {
  std::unique_ptr<GgufFile> f;
  const std::string dir = std::filesystem::temp_directory_path().string();
  Status st = GgufFile::open(dir, &f);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("is a directory"), std::string::npos) << st.message();
  expect_clean_message(st, dir);
  EXPECT_EQ(f, nullptr);

  const std::string missing = temp_path("no-such-file.gguf");
  st = GgufFile::open(missing, &f);
  EXPECT_EQ(st.code(), StatusCode::NotFound);
  EXPECT_NE(st.message().find("cannot open"), std::string::npos) << st.message();
  expect_clean_message(st, missing);

  const std::string empty = temp_path("empty.gguf");
  std::ofstream(empty, std::ios::binary).close();
  st = GgufFile::open(empty, &f);
  EXPECT_EQ(st.code(), StatusCode::CorruptFile);
  EXPECT_NE(st.message().find("the file is empty"), std::string::npos) << st.message();
  expect_clean_message(st, empty);
  std::remove(empty.c_str());

  // A bad file on disk: the map is released and the error names the path.
  const std::string bad = temp_path("bad.gguf");
  {
    Image im = valid_image();
    im.bytes.resize(im.bytes.size() - 1);
    std::ofstream(bad, std::ios::binary).write((const char*)im.bytes.data(), (std::streamsize)im.bytes.size());
  }
  st = GgufFile::open(bad, &f);
  EXPECT_NE(st.message().find("tensor t1 extends past the end of the file"), std::string::npos) << st.message();
  expect_clean_message(st, bad);
  std::remove(bad.c_str());
}

// --- the writer ---

// Fills a tensor with a pattern that depends on its position and a seed.
GgufWriter::DataFn pattern(uint8_t seed) {
  return [seed](uint8_t* dst, size_t n) {
    for (size_t i = 0; i < n; ++i) dst[i] = (uint8_t)(i * 31 + seed);
    return Status::ok_status();
  };
}

TEST(GgufWriter, RoundTripsMetadataAndTensorsOfEveryType) {
  GgufWriter w;
  w.set_string("s", "h\xc3\xa9llo");
  w.set_u32("u32", 4000000000u);
  w.set_i32("i32", -5);
  w.set_u64("u64", 1ull << 40);
  w.set_f32("f32", 0.25f);
  w.set_bool("b", true);
  w.set_bool("nb", false);
  w.set_string_array("sa", {"a", "", "ccc"});
  w.set_f32_array("fa", {1.5f, -2.0f});
  w.set_i32_array("ia", {1, -2, 3});
  w.set_i32_array("empty", {});
  w.set_u32("i32", 9);  // set twice: last value, first position
  struct Decl { const char* name; TensorType type; std::vector<int64_t> ne; size_t bytes; };
  const Decl decls[] = {
      {"f32", TensorType::F32, {5}, 20},
      {"f16", TensorType::F16, {3, 2, 2}, 24},
      {"bf16", TensorType::BF16, {7, 1, 1, 2}, 28},
      {"q4_0", TensorType::Q4_0, {64, 3}, 6 * 18},
      {"q8_0", TensorType::Q8_0, {64, 3}, 6 * 34},
      {"q4_K", TensorType::Q4_K, {256, 2}, 2 * 144},
      {"q5_K", TensorType::Q5_K, {512}, 2 * 176},
      {"q6_K", TensorType::Q6_K, {256, 1, 3}, 3 * 210},
  };
  uint8_t seed = 1;
  for (const Decl& d : decls) w.add_tensor(d.name, d.type, d.ne, pattern(seed++));
  const std::string path = temp_path("roundtrip.gguf");
  Status st = w.write(path);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  std::unique_ptr<GgufFile> f;
  st = GgufFile::open(path, &f);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->keys(), (std::vector<std::string>{"s", "u32", "i32", "u64", "f32", "b", "nb", "sa", "fa", "ia",
                                                 "empty", "general.alignment"}));
  uint64_t u = 0;
  EXPECT_TRUE(f->get_u64("general.alignment", &u));
  EXPECT_EQ(u, 32u);
  EXPECT_EQ(f->find("general.alignment")->type, VT::U32);
  std::string s;
  EXPECT_TRUE(f->get_string("s", &s));
  EXPECT_EQ(s, "h\xc3\xa9llo");
  EXPECT_TRUE(f->get_u64("u32", &u));
  EXPECT_EQ(u, 4000000000u);
  EXPECT_EQ(f->find("i32")->type, VT::U32);
  EXPECT_EQ(f->find("i32")->u, 9u);
  EXPECT_TRUE(f->get_u64("u64", &u));
  EXPECT_EQ(u, 1ull << 40);
  double d = 0;
  EXPECT_TRUE(f->get_f64("f32", &d));
  EXPECT_EQ(d, 0.25);
  bool b = false;
  EXPECT_TRUE(f->get_bool("b", &b));
  EXPECT_TRUE(b);
  EXPECT_TRUE(f->get_bool("nb", &b));
  EXPECT_FALSE(b);
  const GgufValue* sa = f->find("sa");
  ASSERT_EQ(sa->array_strings.size(), 3u);
  EXPECT_EQ(sa->array_strings[0], "a");
  EXPECT_EQ(sa->array_strings[1], "");
  EXPECT_EQ(sa->array_strings[2], "ccc");
  float fa[2];
  ASSERT_EQ(f->find("fa")->array_count, 2u);
  std::memcpy(fa, f->find("fa")->array_data, 8);
  EXPECT_EQ(fa[0], 1.5f);
  EXPECT_EQ(fa[1], -2.0f);
  int32_t ia[3];
  ASSERT_EQ(f->find("ia")->array_count, 3u);
  std::memcpy(ia, f->find("ia")->array_data, 12);
  EXPECT_EQ(ia[1], -2);
  EXPECT_EQ(f->find("empty")->array_count, 0u);

  ASSERT_EQ(f->tensors().size(), std::size(decls));
  seed = 1;
  for (const Decl& dcl : decls) {
    const GgufTensor* t = f->tensor(dcl.name);
    ASSERT_NE(t, nullptr) << dcl.name;
    EXPECT_EQ(t->type, dcl.type) << dcl.name;
    EXPECT_EQ(t->n_dims, (int)dcl.ne.size()) << dcl.name;
    for (size_t i = 0; i < dcl.ne.size(); ++i) EXPECT_EQ(t->ne[i], dcl.ne[i]) << dcl.name;
    EXPECT_EQ(t->n_bytes, dcl.bytes) << dcl.name;
    EXPECT_EQ((uintptr_t)t->data % 32, 0u) << dcl.name;
    bool same = true;
    for (size_t i = 0; i < t->n_bytes; ++i) same &= t->data[i] == (uint8_t)(i * 31 + seed);
    EXPECT_TRUE(same) << dcl.name;
    ++seed;
  }
  std::remove(path.c_str());
}

// Two values are the same in every field the reader fills (floats compared bit for bit).
void expect_same_value(const GgufValue& a, const GgufValue& b, const std::string& key) {
  EXPECT_EQ(a.type, b.type) << key;
  EXPECT_EQ(a.u, b.u) << key;
  EXPECT_EQ(a.i, b.i) << key;
  EXPECT_EQ(std::memcmp(&a.f, &b.f, sizeof a.f), 0) << key;
  EXPECT_EQ(a.str, b.str) << key;
  EXPECT_EQ(a.array_type, b.array_type) << key;
  ASSERT_EQ(a.array_count, b.array_count) << key;
  EXPECT_EQ(a.array_strings, b.array_strings) << key;
  if (a.type == VT::ARRAY && a.array_type != VT::STRING && a.array_count > 0) {
    const size_t esize = a.array_type == VT::U8 || a.array_type == VT::I8 || a.array_type == VT::BOOL ? 1
                         : a.array_type == VT::U16 || a.array_type == VT::I16                         ? 2
                         : a.array_type == VT::U32 || a.array_type == VT::I32 || a.array_type == VT::F32 ? 4
                                                                                                         : 8;
    EXPECT_EQ(std::memcmp(a.array_data, b.array_data, a.array_count * esize), 0) << key;
  }
}

TEST(GgufWriter, CopyValueReproducesEveryType) {
  const Image im = all_types_image();
  std::unique_ptr<GgufFile> src;
  ASSERT_TRUE(im.open(&src).ok());
  GgufWriter w;
  for (const std::string& key : src->keys()) w.copy_value(key, *src->find(key));
  for (const GgufTensor& t : src->tensors()) {
    w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), [&t](uint8_t* dst, size_t n) {
      if (n != t.n_bytes) return internal_error("size mismatch");
      std::memcpy(dst, t.data, n);
      return Status::ok_status();
    });
  }
  const std::string path = temp_path("copy.gguf");
  Status st = w.write(path);
  ASSERT_TRUE(st.ok()) << st.message();
  std::unique_ptr<GgufFile> dst;
  st = GgufFile::open(path, &dst);
  ASSERT_TRUE(st.ok()) << st.message();
  std::vector<std::string> keys = src->keys();
  keys.push_back("general.alignment");
  EXPECT_EQ(dst->keys(), keys);
  for (const std::string& key : src->keys()) expect_same_value(*src->find(key), *dst->find(key), key);
  for (const GgufTensor& t : src->tensors()) {
    const GgufTensor* c = dst->tensor(t.name);
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(c->n_bytes, t.n_bytes);
    EXPECT_EQ(std::memcmp(c->data, t.data, t.n_bytes), 0) << t.name;
  }

  // Copying a copy gives the same bytes.
  GgufWriter again;
  for (const std::string& key : dst->keys()) again.copy_value(key, *dst->find(key));
  for (const GgufTensor& t : dst->tensors()) {
    again.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), [&t](uint8_t* out, size_t n) {
      std::memcpy(out, t.data, n);
      return Status::ok_status();
    });
  }
  ASSERT_TRUE(again.write(path + "2").ok());
  EXPECT_EQ(read_bytes(path), read_bytes(path + "2"));
  std::remove(path.c_str());
  std::remove((path + "2").c_str());
}

TEST(GgufWriter, KeepsACopiedAlignment) {
  Image im;
  im.header(1, 1).kv_u32("general.alignment", 64).tensor("a", {24}, 0, 0).pad(64).zeros(96);
  std::unique_ptr<GgufFile> src;
  ASSERT_TRUE(im.open(&src).ok());
  GgufWriter w;
  w.copy_value("general.alignment", *src->find("general.alignment"));
  w.add_tensor("a", TensorType::F32, {24}, pattern(3));
  w.add_tensor("b", TensorType::F32, {8}, pattern(4));
  const std::string path = temp_path("align64.gguf");
  ASSERT_TRUE(w.write(path).ok());
  std::unique_ptr<GgufFile> f;
  Status st = GgufFile::open(path, &f);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->keys().size(), 1u);
  EXPECT_EQ(f->tensor("b")->offset, 128u);
  EXPECT_EQ((uintptr_t)f->tensor("b")->data % 64, 0u);
  std::remove(path.c_str());
}

TEST(GgufWriter, RefusesWhatTheReaderWouldRefuse) {
  const std::string path = temp_path("refused.gguf");
  auto refused = [&](GgufWriter& w, const std::string& fragment, StatusCode code = StatusCode::InvalidArgument) {
    Status st = w.write(path);
    ASSERT_FALSE(st.ok()) << fragment;
    EXPECT_EQ(st.code(), code) << st.message();
    EXPECT_NE(st.message().find(fragment), std::string::npos) << st.message();
    expect_clean_message(st, path);
    EXPECT_FALSE(std::filesystem::exists(path)) << fragment;
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp")) << fragment;
  };
  struct Bad { TensorType type; std::vector<int64_t> ne; const char* fragment; };
  const Bad bad[] = {
      {TensorType::F32, {}, "0 dimensions"},
      {TensorType::F32, {1, 1, 1, 1, 1}, "5 dimensions"},
      {TensorType::F32, {8, 0}, "invalid dimension 0"},
      {TensorType::F32, {-8}, "invalid dimension -8"},
      {TensorType::Q8_0, {33}, "not a multiple of the q8_0 block size 32"},
      {TensorType::Q8_K, {256}, "unsupported type 15"},
      {(TensorType)99, {8}, "unsupported type 99"},
      {TensorType::F32, {1ll << 40, 1ll << 40}, "too many elements"},
  };
  for (const Bad& b : bad) {
    GgufWriter w;
    w.add_tensor("t", b.type, b.ne, pattern(0));
    refused(w, b.fragment);
  }
  {
    GgufWriter w;
    w.add_tensor("t", TensorType::F32, {8}, pattern(0));
    w.add_tensor("t", TensorType::F32, {8}, pattern(0));
    refused(w, "duplicate tensor t");
  }
  {
    GgufWriter w;
    w.add_tensor("", TensorType::F32, {8}, pattern(0));
    refused(w, "empty name");
  }
  {
    GgufWriter w;
    w.set_u32("", 1);
    refused(w, "empty metadata key");
  }
  for (uint32_t a : {0u, 3u, 48u}) {
    GgufWriter w;
    w.set_u32("general.alignment", a);
    refused(w, "general.alignment must be a uint32 power of two");
  }
  {
    GgufWriter w;
    w.set_u64("general.alignment", 32);
    refused(w, "general.alignment must be a uint32 power of two");
  }
  {
    GgufValue v;
    v.type = (VT)77;
    GgufWriter w;
    w.copy_value("k", v);
    refused(w, "cannot copy metadata key k: unknown value type 77");
  }
  {
    GgufValue v;
    v.type = VT::ARRAY;
    v.array_type = VT::ARRAY;
    v.array_count = 1;
    GgufWriter w;
    w.copy_value("k", v);
    refused(w, "cannot copy metadata key k");
  }
  {
    GgufValue v;
    v.type = VT::ARRAY;
    v.array_type = VT::U32;
    v.array_count = 4;  // and no data
    GgufWriter w;
    w.copy_value("k", v);
    refused(w, "the array has no data");
  }
  {
    GgufValue v;
    v.type = VT::ARRAY;
    v.array_type = VT::STRING;
    v.array_count = 2;
    v.array_strings = {"only one"};
    GgufWriter w;
    w.copy_value("k", v);
    refused(w, "string count");
  }
  {
    // A failing fill aborts the write and leaves nothing behind.
    GgufWriter w;
    w.add_tensor("a", TensorType::F32, {8}, pattern(0));
    w.add_tensor("b", TensorType::F32, {8}, [&](uint8_t*, size_t) {
      EXPECT_TRUE(std::filesystem::exists(path + ".tmp"));
      return internal_error("\"" + path + "\": no data for b");
    });
    refused(w, "no data for b", StatusCode::Internal);
  }
  {
    GgufWriter w;
    w.add_tensor("a", TensorType::F32, {8}, pattern(0));
    Status st = w.write(temp_path("no-such-dir") + "/x.gguf");
    EXPECT_EQ(st.code(), StatusCode::IoError) << st.message();
  }
}

TEST(GgufWriter, ReplacesAnExistingFile) {
  const std::string path = temp_path("replace.gguf");
  std::ofstream(path, std::ios::binary) << "old contents";
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  ASSERT_TRUE(w.write(path).ok());
  std::unique_ptr<GgufFile> f;
  ASSERT_TRUE(GgufFile::open(path, &f).ok());
  EXPECT_EQ(f->keys().size(), 2u);
  std::remove(path.c_str());
}

// --- a real file ---

TEST(Gguf, ReadsTheRealWorldTinyLlama) {
  std::unique_ptr<GgufFile> f;
  const std::string path = std::string(PG_INFER_SHARED_DIR) + "/models/llama-2-tiny-random.gguf";
  Status st = GgufFile::open(path, &f);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(f->version(), 3u);
  std::string arch;
  EXPECT_TRUE(f->get_string("general.architecture", &arch));
  EXPECT_EQ(arch, "llama");
  const GgufTensor* emb = f->tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_GE(emb->n_dims, 2);
  EXPECT_EQ(emb->ne[1], 32000);
  const GgufValue* tokens = f->find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->type, VT::ARRAY);
  EXPECT_EQ(tokens->array_type, VT::STRING);
  EXPECT_EQ(tokens->array_count, 32000u);
  EXPECT_EQ(tokens->array_strings.size(), 32000u);
  EXPECT_EQ(tokens->array_strings[0], "<unk>");
  for (const GgufTensor& t : f->tensors()) {
    EXPECT_NE(t.data, nullptr) << t.name;
    EXPECT_EQ((uintptr_t)t.data % f->alignment(), 0u) << t.name;
  }
}

}  // namespace
}  // namespace pginfer
