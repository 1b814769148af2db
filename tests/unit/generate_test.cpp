// tests/unit/generate_test.cpp: the generation loop (engine/generate.h): ids, streamed text, stop strings,
// cancellation, limits, and end-of-generation tokens of the vocabulary.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/session.h"
#include "engine/tokenizer.h"
#include "engine/utf8.h"
#include "engine/vocab.h"
#include "tests/unit/test_models.h"

namespace pginfer {
namespace {

// A tiny model with the Llama 2 vocabulary, its backend and vocabulary.
struct Fixture {
  std::unique_ptr<Model> model;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Vocab> vocab;

  Fixture() {
    Status st = Model::load(testing::synthetic_model("tiny", TensorType::F32), &model);
    EXPECT_TRUE(st.ok()) << st.message();
    EXPECT_TRUE(Vocab::load(model->file(), &vocab).ok());
    backend = make_cpu_backend({1});
    EXPECT_TRUE(backend->prepare(*model).ok());
  }

  // Generates after "Once upon a time" in a fresh session of 64 positions.
  GenerateResult run(const GenerateOptions& options, bool with_vocab = true, Status* status = nullptr) {
    std::unique_ptr<Session> s;
    EXPECT_TRUE(Session::create(*model, *backend, 64, &s).ok());
    std::vector<int32_t> prompt;
    EXPECT_TRUE(tokenize(*vocab, "Once upon a time", true, &prompt).ok());
    GenerateResult r;
    Status st = generate(*s, with_vocab ? vocab.get() : nullptr, prompt, options, &r);
    if (status != nullptr) *status = st;
    else EXPECT_TRUE(st.ok()) << st.message();
    return r;
  }
};

TEST(Generate, TextIsTheDetokenizedIdsAndStreamsInPieces) {
  Fixture f;
  GenerateOptions o;
  o.max_tokens = 12;
  std::string streamed;
  int calls = 0;
  o.on_text = [&](std::string_view piece) {
    streamed += piece;
    ++calls;
    return true;
  };
  const GenerateResult r = f.run(o);
  ASSERT_EQ(r.finish, FinishReason::Length);
  ASSERT_EQ(r.ids.size(), 12u);
  EXPECT_EQ(streamed, r.text);
  EXPECT_GT(calls, 1);
  // The same ids without a vocabulary (ids only, no end-of-generation check).
  o.on_text = nullptr;
  EXPECT_EQ(f.run(o, false).ids, r.ids);
  // The text is what detokenizing the ids after the prompt gives.
  std::vector<int32_t> prompt;
  ASSERT_TRUE(tokenize(*f.vocab, "Once upon a time", true, &prompt).ok());
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), r.ids.begin(), r.ids.end());
  std::string whole, head;
  ASSERT_TRUE(detokenize(*f.vocab, all, &whole).ok());
  ASSERT_TRUE(detokenize(*f.vocab, prompt, &head).ok());
  EXPECT_EQ(head + r.text, whole);
}

TEST(Generate, TextIsAlwaysValidUtf8) {
  // Random weights sample byte tokens (<0xXX>) that rarely form whole characters.
  Fixture f;
  GenerateOptions o;
  o.max_tokens = 40;
  o.sampling.temperature = 1.5f;
  int byte_tokens = 0;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    o.sampling.seed = seed;
    std::string streamed;
    o.on_text = [&](std::string_view piece) {
      EXPECT_TRUE(is_valid_utf8(piece)) << "a streamed piece is not valid UTF-8";
      streamed += piece;
      return true;
    };
    const GenerateResult r = f.run(o);
    EXPECT_TRUE(is_valid_utf8(r.text));
    EXPECT_EQ(streamed, r.text);
    for (int32_t id : r.ids) byte_tokens += f.vocab->type(id) == TokenType::Byte;
  }
  EXPECT_GT(byte_tokens, 0) << "the test needs byte tokens to mean anything";
}

TEST(Generate, StopStringEndsTheTextBeforeIt) {
  Fixture f;
  GenerateOptions o;
  o.max_tokens = 12;
  const GenerateResult full = f.run(o);
  ASSERT_GE(full.text.size(), 6u);
  // A stop string made of the middle of the text, possibly spanning tokens.
  const size_t at = full.text.size() / 2;
  o.stops = {"never appears \x01", full.text.substr(at, 3)};
  const GenerateResult stopped = f.run(o);
  EXPECT_EQ(stopped.finish, FinishReason::Stop);
  EXPECT_EQ(stopped.text, full.text.substr(0, full.text.find(o.stops[1])));
  EXPECT_LE(stopped.ids.size(), full.ids.size());
}

TEST(Generate, CallbackCancels) {
  Fixture f;
  GenerateOptions o;
  o.max_tokens = 12;
  int calls = 0;
  o.on_text = [&](std::string_view) { return ++calls < 2; };
  const GenerateResult r = f.run(o);
  EXPECT_EQ(r.finish, FinishReason::Cancelled);
  EXPECT_EQ(calls, 2);
  EXPECT_LT(r.ids.size(), 12u);
}

TEST(Generate, ShouldStopCancelsBetweenTokens) {
  Fixture f;
  GenerateOptions o;
  o.max_tokens = 12;
  int asked = 0;
  o.should_stop = [&] { return ++asked > 3; };
  const GenerateResult r = f.run(o, false);
  EXPECT_EQ(r.finish, FinishReason::Cancelled);
  EXPECT_EQ(r.ids.size(), 3u);
}

TEST(Generate, RejectsWhatDoesNotFitOrIsInvalid) {
  Fixture f;
  GenerateOptions o;
  o.max_tokens = 60;  // the prompt plus 60 exceeds 64 positions
  Status st;
  f.run(o, true, &st);
  EXPECT_EQ(st.code(), StatusCode::InvalidArgument);
  EXPECT_NE(st.message().find("exceeds the context"), std::string::npos) << st.message();
  o.max_tokens = 4;
  o.sampling.top_p = 0;
  f.run(o, true, &st);
  EXPECT_EQ(st.code(), StatusCode::InvalidArgument);
}

TEST(Vocab, EndOfGenerationTokens) {
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<Vocab> v;
  // Llama 2: </s> only.
  ASSERT_TRUE(GgufFile::open(testing::shared_dir() + "/vocab/ggml-vocab-llama-spm.gguf", &file).ok());
  ASSERT_TRUE(Vocab::load(*file, &v).ok());
  EXPECT_TRUE(v->is_eog(v->eos()));
  EXPECT_EQ(v->eot(), -1);
  EXPECT_FALSE(v->is_eog(v->bos()));
  EXPECT_FALSE(v->is_eog(v->find("\xE2\x96\x81the")));
  // Phi-3: <|end|> ends a turn, <|endoftext|> is EOS.
  ASSERT_TRUE(GgufFile::open(testing::shared_dir() + "/vocab/ggml-vocab-phi-3.gguf", &file).ok());
  ASSERT_TRUE(Vocab::load(*file, &v).ok());
  const int32_t end = v->find("<|end|>");
  ASSERT_GE(end, 0);
  EXPECT_EQ(v->eot(), end);
  EXPECT_TRUE(v->is_eog(end));
  EXPECT_TRUE(v->is_eog(v->eos()));
  EXPECT_FALSE(v->is_eog(v->find("<|user|>")));
  EXPECT_EQ(v->pad(), 32000);  // Phi-3 pads with <|endoftext|>
}

}  // namespace
}  // namespace pginfer
