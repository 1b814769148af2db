// tests/unit/model_test.cpp: hyperparameters and weights bound from GGUF files, and the files refused.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>

#include "engine/gguf_writer.h"
#include "engine/model.h"
#include "test_models.h"

namespace pginfer {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("pginfer-model-test-" + name)).string();
}

TEST(Model, ReadsSyntheticShapes) {
  std::unique_ptr<Model> m;
  ASSERT_TRUE(Model::load(testing::synthetic_model("tiny-qwen2", TensorType::Q8_0), &m).ok());
  const ModelConfig& c = m->config();
  EXPECT_EQ(c.arch_name, "qwen2");
  EXPECT_EQ(c.n_embd, 256);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_head_kv, 2);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_FLOAT_EQ(c.rope_freq_base, 1e6f);
  EXPECT_TRUE(m->output_tied());
  EXPECT_NE(m->layers()[0].bq, nullptr);
  EXPECT_EQ(m->main_weight_type(), TensorType::Q8_0);

  ASSERT_TRUE(Model::load(testing::synthetic_model("tiny-llama3", TensorType::F16), &m).ok());
  ASSERT_NE(m->rope_freqs(), nullptr);
  EXPECT_EQ(m->rope_freqs()->ne[0], 32);
}

// Copies a synthetic model, letting `edit` change metadata and tensors, and returns the load status.
Status load_edited(const std::function<void(GgufWriter&, const GgufFile&)>& edit,
                   const std::function<bool(const std::string&)>& keep_tensor = nullptr,
                   const std::function<bool(const std::string&)>& keep_key = nullptr) {
  std::unique_ptr<GgufFile> in;
  EXPECT_TRUE(GgufFile::open(testing::synthetic_model("tiny", TensorType::F32), &in).ok());
  GgufWriter w;
  for (const std::string& key : in->keys()) {
    if (!keep_key || keep_key(key)) w.copy_value(key, *in->find(key));
  }
  edit(w, *in);
  for (const GgufTensor& t : in->tensors()) {
    if (keep_tensor && !keep_tensor(t.name)) continue;
    const GgufTensor* src = &t;
    w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), [src](uint8_t* dst, size_t n) {
      std::memcpy(dst, src->data, n);
      return Status::ok_status();
    });
  }
  const std::string path = temp_path("edited.gguf");
  EXPECT_TRUE(w.write(path).ok());
  std::unique_ptr<Model> m;
  return Model::load(path, &m);
}

// Backends know the models they prepared by their serial: each load gets a new one, the same file's too.
TEST(Model, EachLoadHasItsOwnSerial) {
  std::unique_ptr<Model> a, b;
  ASSERT_TRUE(Model::load(testing::synthetic_model("tiny", TensorType::Q8_0), &a).ok());
  const uint64_t first = a->serial();
  a.reset();
  ASSERT_TRUE(Model::load(testing::synthetic_model("tiny", TensorType::Q8_0), &b).ok());
  EXPECT_NE(b->serial(), first);
  EXPECT_NE(b->serial(), 0u);
}

TEST(Model, RefusesUnknownArchitecture) {
  Status st = load_edited([](GgufWriter& w, const GgufFile&) { w.set_string("general.architecture", "ollmo"); });
  EXPECT_EQ(st.code(), StatusCode::Unsupported);
  EXPECT_NE(st.message().find("unsupported architecture \"ollmo\""), std::string::npos) << st.message();
}

TEST(Model, RefusesMissingTensor) {
  Status st = load_edited([](GgufWriter&, const GgufFile&) {},
                          [](const std::string& name) { return name != "blk.1.ffn_up.weight"; });
  EXPECT_EQ(st.code(), StatusCode::CorruptFile);
  EXPECT_NE(st.message().find("missing tensor blk.1.ffn_up.weight"), std::string::npos) << st.message();
}

TEST(Model, RefusesShapeMismatch) {
  Status st = load_edited([](GgufWriter& w, const GgufFile&) { w.set_u32("llama.feed_forward_length", 512); });
  EXPECT_EQ(st.code(), StatusCode::CorruptFile);
  EXPECT_NE(st.message().find("has shape"), std::string::npos) << st.message();
}

TEST(Model, RefusesBadHyperparameters) {
  Status st = load_edited([](GgufWriter& w, const GgufFile&) { w.set_u32("llama.attention.head_count_kv", 3); });
  EXPECT_EQ(st.code(), StatusCode::CorruptFile) << st.message();
  st = load_edited([](GgufWriter& w, const GgufFile&) { w.set_u32("llama.attention.head_count", 0); });
  EXPECT_EQ(st.code(), StatusCode::CorruptFile) << st.message();
  st = load_edited([](GgufWriter& w, const GgufFile&) { w.set_u64("llama.block_count", 1ull << 40); });
  EXPECT_EQ(st.code(), StatusCode::CorruptFile) << st.message();
  st = load_edited([](GgufWriter& w, const GgufFile&) { w.set_string("llama.embedding_length", "wide"); });
  EXPECT_EQ(st.code(), StatusCode::CorruptFile) << st.message();
  st = load_edited([](GgufWriter&, const GgufFile&) {}, nullptr,
                   [](const std::string& key) { return key != "llama.block_count"; });
  EXPECT_EQ(st.code(), StatusCode::CorruptFile);
  EXPECT_NE(st.message().find("missing metadata key llama.block_count"), std::string::npos) << st.message();
}

TEST(Model, LoadsTheRealWorldTinyLlama) {
  std::unique_ptr<Model> m;
  Status st = Model::load(testing::shared_dir() + "/models/llama-2-tiny-random.gguf", &m);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(m->config().n_vocab, 32000);
  EXPECT_EQ(m->config().n_embd, 8);
  EXPECT_EQ(m->config().n_layer, 1);
}

}  // namespace
}  // namespace pginfer
