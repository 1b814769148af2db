// tests/unit/gguf_test.cpp: the GGUF reader on well-formed files, and every way a file is refused.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/gguf.h"
#include "engine/gguf_writer.h"

namespace pginfer {
namespace {

// Builds GGUF images byte by byte, so tests can write what no writer would.
class Image {
 public:
  Image& u32(uint32_t v) { return raw(&v, 4); }
  Image& u64(uint64_t v) { return raw(&v, 8); }
  Image& str(const std::string& s) { u64(s.size()); return raw(s.data(), s.size()); }
  Image& raw(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    bytes.insert(bytes.end(), b, b + n);
    return *this;
  }
  Image& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    return u32(0x46554747).u32(version).u64(n_tensors).u64(n_kv);
  }
  Image& kv_u32(const std::string& key, uint32_t v) { return str(key).u32(4).u32(v); }
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
  im.str("general.architecture").u32(8).str("llama");
  im.tensor("t0", {8}, 0, 0).tensor("t1", {8, 2}, 0, 32).pad().zeros(32 + 64);
  return im;
}

void expect_refused(const Image& im, const std::string& fragment) {
  Status st = im.open();
  ASSERT_FALSE(st.ok()) << "expected a refusal mentioning: " << fragment;
  EXPECT_NE(st.message().find(fragment), std::string::npos) << st.message();
  EXPECT_EQ(st.message().rfind("\"test.gguf\": ", 0), 0u) << st.message();
}

TEST(Gguf, ReadsAValidImage) {
  std::unique_ptr<GgufFile> f;
  ASSERT_TRUE(valid_image().open(&f).ok());
  EXPECT_EQ(f->version(), 3u);
  uint64_t count = 0;
  EXPECT_TRUE(f->get_u64("a.count", &count));
  EXPECT_EQ(count, 7u);
  std::string arch;
  EXPECT_TRUE(f->get_string("general.architecture", &arch));
  EXPECT_EQ(arch, "llama");
  ASSERT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->tensor("t1")->ne[1], 2);
  EXPECT_EQ(f->tensor("t1")->n_bytes, 64u);
  EXPECT_EQ(f->tensor("missing"), nullptr);
}

TEST(Gguf, ReadsVersion2) {
  Image im = valid_image();
  im.bytes[4] = 2;
  EXPECT_TRUE(im.open().ok());
}

TEST(Gguf, EveryTruncationIsACleanError) {
  const Image full = valid_image();
  for (size_t len = 0; len < full.bytes.size(); ++len) {
    Image cut;
    cut.bytes.assign(full.bytes.begin(), full.bytes.begin() + len);
    Status st = cut.open();
    EXPECT_FALSE(st.ok()) << "prefix of " << len << " bytes was accepted";
  }
}

TEST(Gguf, RefusesBadHeaders) {
  Image im = valid_image();
  im.bytes[0] = 'X';
  expect_refused(im, "bad magic");
  im = valid_image();
  im.bytes[4] = 1;
  expect_refused(im, "version 1");
  im = valid_image();
  im.bytes[4] = 99;
  expect_refused(im, "unsupported GGUF version 99");
  expect_refused(Image().header(0, 1ull << 60), "metadata count");
  expect_refused(Image().header(1ull << 60, 0), "tensor count");
}

TEST(Gguf, RefusesBadMetadata) {
  expect_refused(Image().header(0, 1).u64(1000).raw("ab", 2).zeros(20), "truncated");
  expect_refused(Image().header(0, 1).str("k").u32(8).u64(1ull << 40), "truncated");
  expect_refused(Image().header(0, 1).str("k").u32(9).u32(4).u64(1ull << 61), "truncated");
  expect_refused(Image().header(0, 1).str("k").u32(9).u32(9).u64(1), "array of arrays");
  expect_refused(Image().header(0, 1).str("k").u32(77).u32(0), "unknown value type");
  expect_refused(Image().header(0, 1).str("k").u32(7).raw("\x02", 1), "bool");
  expect_refused(Image().header(0, 2).kv_u32("k", 1).kv_u32("k", 2), "duplicate metadata key k");
  expect_refused(Image().header(0, 1).kv_u32("general.alignment", 0), "not a power of two");
  expect_refused(Image().header(0, 1).kv_u32("general.alignment", 3), "not a power of two");
  expect_refused(Image().header(0, 1).str("general.alignment").u32(8).str("x"), "must be a uint32");
}

TEST(Gguf, RefusesBadTensors) {
  auto one = [](const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    Image im;
    im.header(1, 0).tensor(name, ne, type, offset).pad().zeros(64);
    return im;
  };
  expect_refused(one("t", {}, 0, 0), "0 dimensions");
  expect_refused(one("t", {1, 1, 1, 1, 1}, 0, 0), "5 dimensions");
  expect_refused(one("t", {8, 0}, 0, 0), "invalid dimension 0");
  expect_refused(one("t", {1ull << 40, 1ull << 40}, 0, 0), "too many elements");
  expect_refused(one("t", {33}, 8, 0), "not a multiple of the q8_0 block size 32");
  expect_refused(one("t", {32}, 99, 0), "unsupported type 99");
  expect_refused(one("t", {8}, 0, 4), "not aligned");
  expect_refused(one("blk.3.ffn_up.weight", {64}, 0, 0), "tensor blk.3.ffn_up.weight extends past the end of the file");
  expect_refused(one("t", {8}, 0, 1ull << 62), "extends past the end");
  expect_refused(one("", {8}, 0, 0), "empty name");
  Image dup;
  dup.header(2, 0).tensor("t", {8}, 0, 0).tensor("t", {8}, 0, 32).pad().zeros(64);
  expect_refused(dup, "duplicate tensor t");
  Image overlap;
  overlap.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad().zeros(96);
  expect_refused(overlap, "overlaps");
}

TEST(Gguf, RefusesFilesThatAreNotFiles) {
  std::unique_ptr<GgufFile> f;
  const std::string dir = std::filesystem::temp_directory_path().string();
  Status st = GgufFile::open(dir, &f);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("not a regular file"), std::string::npos) << st.message();
  st = GgufFile::open(dir + "/pginfer-no-such-file.gguf", &f);
  EXPECT_EQ(st.code(), StatusCode::IoError);
  const std::string empty = dir + "/pginfer-empty.gguf";
  FILE* fp = std::fopen(empty.c_str(), "wb");
  std::fclose(fp);
  st = GgufFile::open(empty, &f);
  EXPECT_EQ(st.code(), StatusCode::CorruptFile);
  EXPECT_NE(st.message().find("empty"), std::string::npos) << st.message();
}

TEST(Gguf, WriterRoundTripsEveryValueType) {
  GgufWriter w;
  w.set_string("s", "héllo");
  w.set_u32("u32", 4000000000u);
  w.set_i32("i32", -5);
  w.set_u64("u64", 1ull << 40);
  w.set_f32("f32", 0.25f);
  w.set_bool("b", true);
  w.set_string_array("sa", {"a", "", "ccc"});
  w.set_f32_array("fa", {1.5f, -2.0f});
  w.set_i32_array("ia", {1, -2, 3});
  w.add_tensor("w", TensorType::Q8_0, {64, 3}, [](uint8_t* dst, size_t n) {
    for (size_t i = 0; i < n; ++i) dst[i] = (uint8_t)i;
    return Status::ok_status();
  });
  w.add_tensor("v", TensorType::F32, {5}, [](uint8_t* dst, size_t n) {
    std::memset(dst, 0, n);
    return Status::ok_status();
  });
  const std::string path = (std::filesystem::temp_directory_path() / "pginfer-roundtrip.gguf").string();
  ASSERT_TRUE(w.write(path).ok());
  std::unique_ptr<GgufFile> f;
  Status st = GgufFile::open(path, &f);
  ASSERT_TRUE(st.ok()) << st.message();
  std::string s;
  EXPECT_TRUE(f->get_string("s", &s));
  EXPECT_EQ(s, "héllo");
  uint64_t u = 0;
  EXPECT_TRUE(f->get_u64("u32", &u));
  EXPECT_EQ(u, 4000000000u);
  int64_t i = 0;
  EXPECT_TRUE(f->get_i64("i32", &i));
  EXPECT_EQ(i, -5);
  EXPECT_FALSE(f->get_u64("i32", &u));  // negative: not an unsigned value
  EXPECT_TRUE(f->get_u64("u64", &u));
  EXPECT_EQ(u, 1ull << 40);
  double d = 0;
  EXPECT_TRUE(f->get_f64("f32", &d));
  EXPECT_EQ(d, 0.25);
  bool b = false;
  EXPECT_TRUE(f->get_bool("b", &b));
  EXPECT_TRUE(b);
  const GgufValue* sa = f->find("sa");
  ASSERT_NE(sa, nullptr);
  ASSERT_EQ(sa->array_strings.size(), 3u);
  EXPECT_EQ(sa->array_strings[2], "ccc");
  EXPECT_EQ(f->find("ia")->array_count, 3u);
  const GgufTensor* t = f->tensor("w");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->type, TensorType::Q8_0);
  EXPECT_EQ(t->n_bytes, 3u * 2 * 34);
  EXPECT_EQ(t->data[5], 5);
  EXPECT_EQ((uintptr_t)t->data % 32, 0u);
  // copy_value reproduces every value, arrays included.
  GgufWriter copy;
  for (const std::string& key : f->keys()) copy.copy_value(key, *f->find(key));
  const std::string path2 = path + ".copy";
  ASSERT_TRUE(copy.write(path2).ok());
  std::unique_ptr<GgufFile> g;
  ASSERT_TRUE(GgufFile::open(path2, &g).ok());
  EXPECT_EQ(g->keys(), f->keys());
  EXPECT_EQ(g->find("sa")->array_strings[0], "a");
  EXPECT_EQ(std::memcmp(g->find("fa")->array_data, f->find("fa")->array_data, 8), 0);
}

TEST(Gguf, ReadsTheRealWorldTinyLlama) {
  std::unique_ptr<GgufFile> f;
  Status st = GgufFile::open(std::string(PG_INFER_SHARED_DIR) + "/models/llama-2-tiny-random.gguf", &f);
  ASSERT_TRUE(st.ok()) << st.message();
  std::string arch;
  EXPECT_TRUE(f->get_string("general.architecture", &arch));
  EXPECT_EQ(arch, "llama");
  EXPECT_NE(f->tensor("token_embd.weight"), nullptr);
  const GgufValue* tokens = f->find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->array_strings.size(), 32000u);
}

}  // namespace
}  // namespace pginfer
