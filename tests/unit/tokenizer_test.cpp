// tests/unit/tokenizer_test.cpp: tokenization against llama.cpp's golden vectors (every vocab GGUF in
// ../shared/vocab with .inp/.out files beside it, string by string), special tokens, invalid UTF-8,
// detokenization, and vocabulary metadata that must be refused at load.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "engine/gguf.h"
#include "engine/gguf_writer.h"
#include "engine/tokenizer.h"
#include "engine/vocab.h"
#include "test_models.h"

namespace pginfer {
namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The test strings of a .inp file, separated by "\n__ggml_vocab_test__\n".
std::vector<std::string> split_cases(const std::string& text) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> cases;
  size_t start = 0;
  for (size_t pos; (pos = text.find(sep, start)) != std::string::npos; start = pos + sep.size()) {
    cases.push_back(text.substr(start, pos - start));
  }
  return cases;
}

std::vector<int32_t> parse_line(const std::string& line) {
  std::vector<int32_t> ids;
  std::stringstream ss(line);
  for (int32_t id; ss >> id;) ids.push_back(id);
  return ids;
}

struct VocabCase {
  std::string gguf, inp, out;
};

std::vector<VocabCase> vocab_cases() {
  std::vector<VocabCase> found;
  for (const auto& entry : std::filesystem::directory_iterator(testing::shared_dir() + "/vocab")) {
    const std::string path = entry.path().string();
    if (path.size() > 5 && path.substr(path.size() - 5) == ".gguf" && std::filesystem::exists(path + ".inp") &&
        std::filesystem::exists(path + ".out")) {
      found.push_back({path, path + ".inp", path + ".out"});
    }
  }
  return found;
}

TEST(Tokenizer, EveryVocabularyMatchesLlamaCppVectors) {
  int checked_vocabs = 0, checked_bpe = 0;
  for (const VocabCase& vc : vocab_cases()) {
    std::unique_ptr<GgufFile> file;
    ASSERT_TRUE(GgufFile::open(vc.gguf, &file).ok()) << vc.gguf;
    std::unique_ptr<Vocab> vocab;
    Status st = Vocab::load(*file, &vocab);
    ASSERT_TRUE(st.ok()) << st.message();
    const std::vector<std::string> cases = split_cases(read_all(vc.inp));
    std::vector<std::string> lines;
    std::stringstream out(read_all(vc.out));
    for (std::string line; std::getline(out, line);) lines.push_back(line);
    ASSERT_EQ(cases.size(), lines.size()) << vc.inp;
    for (size_t i = 0; i < cases.size(); ++i) {
      std::vector<int32_t> ids;
      ASSERT_TRUE(tokenize(*vocab, cases[i], false, &ids).ok());
      EXPECT_EQ(ids, parse_line(lines[i])) << vc.gguf << " case " << i << ": \"" << cases[i] << "\"";
    }
    ++checked_vocabs;
    checked_bpe += vocab->kind() == TokenizerKind::BytePairBpe;
  }
  EXPECT_GE(checked_vocabs, 9) << "the vocab vectors of ../shared/vocab must be found";
  EXPECT_GE(checked_bpe, 7) << "the byte-level BPE vectors of ../shared/vocab must be found";
}

TEST(Tokenizer, DetokenizeRoundTripsAndSpecialTokens) {
  std::unique_ptr<GgufFile> file;
  ASSERT_TRUE(GgufFile::open(testing::shared_dir() + "/vocab/ggml-vocab-llama-spm.gguf", &file).ok());
  std::unique_ptr<Vocab> vocab;
  ASSERT_TRUE(Vocab::load(*file, &vocab).ok());
  EXPECT_EQ(vocab->bos(), 1);
  EXPECT_EQ(vocab->eos(), 2);
  for (std::string text : {"Hello world", " leading space", "tabs\tand\nnewlines", "émoji 🦙 and 中文"}) {
    std::vector<int32_t> ids;
    ASSERT_TRUE(tokenize(*vocab, text, true, &ids).ok());
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], 1) << "BOS first";
    std::string back;
    ASSERT_TRUE(detokenize(*vocab, ids, &back).ok());
    EXPECT_EQ(back, text);
  }
  // Invalid UTF-8 from the user becomes U+FFFD, one per invalid byte, never a crash.
  std::vector<int32_t> bad, replaced;
  ASSERT_TRUE(tokenize(*vocab, "\xff\xfe bad \xE2\x82 utf-8 \xED\xA0\x80", false, &bad).ok());
  ASSERT_TRUE(tokenize(*vocab, "\uFFFD\uFFFD bad \uFFFD\uFFFD utf-8 \uFFFD\uFFFD\uFFFD", false, &replaced).ok());
  EXPECT_EQ(bad, replaced);
  std::string back;
  EXPECT_EQ(detokenize(*vocab, {1, 32000}, &back).code(), StatusCode::InvalidArgument);
  // "<s>" in user text is text, not the BOS token, unless special tokens are parsed on purpose; then the
  // text after it gets the space prefix again, as llama.cpp does.
  std::vector<int32_t> ids, plain;
  ASSERT_TRUE(tokenize(*vocab, "<s>", false, &ids).ok());
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 0);
  ASSERT_TRUE(tokenize(*vocab, "Hi<s>there</s>", false, &ids, true).ok());
  ASSERT_TRUE(tokenize(*vocab, "there", false, &plain).ok());
  std::vector<int32_t> expected;
  ASSERT_TRUE(tokenize(*vocab, "Hi", false, &expected).ok());
  expected.push_back(1);
  expected.insert(expected.end(), plain.begin(), plain.end());
  expected.push_back(2);
  EXPECT_EQ(ids, expected);
}

}  // namespace
}  // namespace pginfer

namespace pginfer {
namespace {

// Writes a small vocabulary GGUF with `edit` applied and returns Vocab::load's status.
Status load_vocab(const std::function<void(GgufWriter&)>& edit) {
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a", "b"});
  w.set_f32_array("tokenizer.ggml.scores", {0, 0, 0, -1, -2});
  w.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 1, 1});
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  edit(w);
  const std::string path = (std::filesystem::temp_directory_path() / "pginfer-vocab-test.gguf").string();
  Status st = w.write(path);
  if (!st.ok()) return st;
  std::unique_ptr<GgufFile> file;
  PGI_RETURN_IF_ERROR(GgufFile::open(path, &file));
  std::unique_ptr<Vocab> vocab;
  return Vocab::load(*file, &vocab);
}

TEST(Vocab, InconsistentMetadataIsRefusedAtLoad) {
  EXPECT_TRUE(load_vocab([](GgufWriter&) {}).ok());
  Status st = load_vocab([](GgufWriter& w) { w.set_f32_array("tokenizer.ggml.scores", {0, 0}); });
  EXPECT_EQ(st.code(), StatusCode::CorruptFile);
  EXPECT_NE(st.message().find("scores"), std::string::npos) << st.message();
  st = load_vocab([](GgufWriter& w) { w.set_i32_array("tokenizer.ggml.token_type", {1, 1, 1, 9, 1}); });
  EXPECT_EQ(st.code(), StatusCode::CorruptFile);
  EXPECT_NE(st.message().find("token 3 has an invalid type"), std::string::npos) << st.message();
  st = load_vocab([](GgufWriter& w) { w.set_u32("tokenizer.ggml.bos_token_id", 5); });
  EXPECT_NE(st.message().find("bos_token_id is not a token id"), std::string::npos) << st.message();
  st = load_vocab([](GgufWriter& w) { w.set_string("tokenizer.ggml.model", "wordpiece"); });
  EXPECT_EQ(st.code(), StatusCode::Unsupported);
  EXPECT_NE(st.message().find("unsupported tokenizer \"wordpiece\""), std::string::npos) << st.message();
  st = load_vocab([](GgufWriter& w) { w.set_string_array("tokenizer.ggml.tokens", {}); });
  EXPECT_EQ(st.code(), StatusCode::CorruptFile);
}

}  // namespace
}  // namespace pginfer
