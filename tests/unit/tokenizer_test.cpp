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

// Loads a vocabulary file of ../shared/vocab.
std::unique_ptr<Vocab> shared_vocab(const std::string& name) {
  std::unique_ptr<GgufFile> file;
  EXPECT_TRUE(GgufFile::open(testing::shared_dir() + "/vocab/ggml-vocab-" + name + ".gguf", &file).ok());
  std::unique_ptr<Vocab> vocab;
  Status st = Vocab::load(*file, &vocab);
  EXPECT_TRUE(st.ok()) << st.message();
  return vocab;
}

std::vector<int32_t> ids_of(const Vocab& vocab, std::string_view text, bool parse_special) {
  std::vector<int32_t> ids;
  Status st = tokenize(vocab, text, false, &ids, parse_special);
  EXPECT_TRUE(st.ok()) << st.message();
  return ids;
}

// Expected ids below come from llama.cpp (node-llama-cpp 3.21.1, tests/reference/llama_ref.mjs tokenize
// --special) on the same vocabulary files.
TEST(Tokenizer, SpecialTokensAsLlamaCppParsesThem) {
  // Phi-3's special tokens drop the whitespace after them; <s>, </s> handling and <|endoftext|> do not.
  auto phi3 = shared_vocab("phi-3");
  EXPECT_EQ(ids_of(*phi3, "<|user|>\n Hello there<|end|>\n  <|assistant|>  Hi", true),
            (std::vector<int32_t>{32010, 15043, 727, 32007, 32001, 6324}));
  EXPECT_EQ(ids_of(*phi3, "<s>x</s>  y <|endoftext|> z", true),
            (std::vector<int32_t>{1, 921, 2, 343, 29871, 32000, 29871, 503}));
  // GPT-2's <|endoftext|> only with parse_special.
  auto gpt2 = shared_vocab("gpt-2");
  EXPECT_EQ(ids_of(*gpt2, "Hello <|endoftext|>x", true), (std::vector<int32_t>{15496, 220, 50256, 87}));
  const std::vector<int32_t> plain = ids_of(*gpt2, "Hello <|endoftext|>x", false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0);
}

// Cases the randomized comparison with llama.cpp once found (ids from llama.cpp on the same files).
TEST(Tokenizer, WhitespaceAndControlTokensAsLlamaCppSeesThem) {
  // U+180E is not whitespace (PCRE2's \s says it is).
  EXPECT_EQ(ids_of(*shared_vocab("gpt-2"), "a\u180Eb  c", false), (std::vector<int32_t>{64, 157, 254, 236, 65, 220, 269}));
  // DeepSeek's literal ranges (CJK, full-width punctuation) never take a non-ASCII space.
  EXPECT_EQ(ids_of(*shared_vocab("deepseek-coder"), "x\u2009s  \u3000y \u4E2D\u6587", false),
            (std::vector<int32_t>{87, 350, 6950, 243, 343, 209, 88, 207, 759, 1919}));
  EXPECT_EQ(ids_of(*shared_vocab("deepseek-llm"), "x\u2009s  \u3000y \u3002", false),
            (std::vector<int32_t>{87, 36004, 82, 243, 88946, 88, 207, 398}));
  // Phi-3 stores </s> as user-defined, yet it is a control token: text without special parsing stays text.
  EXPECT_EQ(ids_of(*shared_vocab("phi-3"), "hi</s> there", false), (std::vector<int32_t>{7251, 829, 29879, 29958, 727}));
}

TEST(Tokenizer, BytePairDetokenizesToTheSameText) {
  for (const char* name : {"gpt-2", "falcon", "deepseek-coder", "starcoder"}) {
    auto vocab = shared_vocab(name);
    for (std::string text : {"Hello world", "  two  spaces\n\ttab", "émoji 🦙 and 中文 and \x01\x7f",
                             "it's 12345 o'clock", ""}) {
      std::vector<int32_t> ids = ids_of(*vocab, text, false);
      std::string back;
      ASSERT_TRUE(detokenize(*vocab, ids, &back).ok());
      EXPECT_EQ(back, text) << name;
    }
    // Streaming: a character split over tokens comes out whole once its last byte arrives.
    std::vector<int32_t> ids = ids_of(*vocab, "🦙", false);
    std::string streamed;
    Detokenizer d(*vocab);
    for (int32_t id : ids) ASSERT_TRUE(d.next(id, &streamed).ok());
    EXPECT_EQ(streamed, "🦙") << name;
  }
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
  st = load_vocab([](GgufWriter& w) { w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a", "a"}); });
  EXPECT_EQ(st.code(), StatusCode::CorruptFile);
  EXPECT_NE(st.message().find("tokens 3 and 4 have the same text"), std::string::npos) << st.message();
}

// A byte-level BPE vocabulary: the 256 byte characters, "ab" and "abc", with `edit` applied.
Status load_bpe_vocab(const std::function<void(GgufWriter&)>& edit) {
  return load_vocab([&](GgufWriter& w) {
    std::vector<std::string> tokens;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
      uint32_t cp = b;
      if (!printable) {
        cp = 256;
        for (int c = 0; c < b; ++c) cp += !((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174);
      }
      std::string t;
      if (cp < 0x80) {
        t += (char)cp;
      } else {
        t += (char)(0xC0 | (cp >> 6));
        t += (char)(0x80 | (cp & 0x3F));
      }
      tokens.push_back(t);
    }
    tokens.push_back("ab");
    tokens.push_back("abc");
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", "gpt-2");
    w.set_string_array("tokenizer.ggml.tokens", tokens);
    w.set_f32_array("tokenizer.ggml.scores", std::vector<float>(tokens.size(), 0.0f));
    w.set_i32_array("tokenizer.ggml.token_type", std::vector<int32_t>(tokens.size(), 1));
    w.set_u32("tokenizer.ggml.bos_token_id", 0);
    w.set_string_array("tokenizer.ggml.merges", {"a b", "ab c"});
    edit(w);
  });
}

TEST(Vocab, BytePairMetadataIsCheckedAtLoad) {
  EXPECT_TRUE(load_bpe_vocab([](GgufWriter&) {}).ok());
  Status st = load_bpe_vocab([](GgufWriter& w) { w.set_string_array("tokenizer.ggml.merges", {"a b", "x y"}); });
  EXPECT_EQ(st.code(), StatusCode::CorruptFile);
  EXPECT_NE(st.message().find("merge 1 (\"x y\") does not join two tokens"), std::string::npos) << st.message();
  st = load_bpe_vocab([](GgufWriter& w) { w.set_string_array("tokenizer.ggml.merges", {"b c"}); });
  EXPECT_EQ(st.code(), StatusCode::CorruptFile);  // "bc" is not a token
  st = load_bpe_vocab([](GgufWriter& w) { w.set_string("tokenizer.ggml.pre", "klingon"); });
  EXPECT_EQ(st.code(), StatusCode::Unsupported);
  EXPECT_NE(st.message().find("unsupported pre-tokenizer \"klingon\""), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("qwen2"), std::string::npos) << "the message lists the supported ones";
  st = load_bpe_vocab([](GgufWriter& w) { w.set_string("tokenizer.ggml.merges", "a b"); });
  EXPECT_EQ(st.code(), StatusCode::CorruptFile);
  st = load_bpe_vocab([](GgufWriter& w) { w.set_bool("tokenizer.ggml.add_bos_token", true); w.set_u32("tokenizer.ggml.bos_token_id", 999); });
  EXPECT_EQ(st.code(), StatusCode::CorruptFile);
}

}  // namespace
}  // namespace pginfer
