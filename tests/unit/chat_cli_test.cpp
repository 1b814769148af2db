// tests/unit/chat_cli_test.cpp: `infer chat` as a user runs it, on a tiny synthetic model whose vocabulary
// (Phi-3's) carries a tokenizer.chat_template: the reply, its determinism, agreement with `infer generate`
// on the same prompt, the --template override, and the errors (no template, bad JSON, bad roles).
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "test_commands.h"
#include "test_models.h"

namespace pginfer {
namespace {

using testing::CommandResult;
using testing::infer_bin;

CommandResult run(const std::string& command_line, bool with_stderr = true) {
  return testing::run_command(command_line, with_stderr);
}

std::string quote(const std::string& s) { return testing::shell_quote(s); }

const std::string& work_dir() { return testing::test_dir(); }

// A tiny F32 model with the vocabulary `vocab_file` of ../shared/vocab, written once.
std::string model_with_vocab(const std::string& vocab_file) {
  const std::string path = work_dir() + "/" + vocab_file;
  if (!std::filesystem::exists(path)) {
    CommandResult r = run(infer_bin() + " synth --shape tiny --type F32 --vocab " + testing::shared_dir() +
                          "/vocab/" + vocab_file + " -o " + path);
    EXPECT_EQ(r.code, 0) << r.out;
  }
  return path;
}

std::string phi3_model() { return model_with_vocab("ggml-vocab-phi-3.gguf"); }
std::string plain_model() { return model_with_vocab("ggml-vocab-llama-spm.gguf"); }  // no chat template

const std::string kMessages =
    R"([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello, who are you?"}])";

TEST(ChatCli, SynthCopiesTheChatTemplate) {
  // The Phi-3 vocabulary's template must reach the synthetic model (synth copies tokenizer.* keys).
  CommandResult r = run("grep -c tokenizer.chat_template " + phi3_model());
  EXPECT_EQ(r.out, "1\n");
}

TEST(ChatCli, GreedyReplyIsDeterministic) {
  const std::string cmd = infer_bin() + " chat -m " + phi3_model() + " --messages " + quote(kMessages) + " -n 8";
  CommandResult a = run(cmd);
  ASSERT_EQ(a.code, 0) << a.out;
  ASSERT_FALSE(a.out.empty());
  EXPECT_EQ(a.out.back(), '\n');
  CommandResult b = run(cmd);
  EXPECT_EQ(b.code, 0);
  EXPECT_EQ(a.out, b.out);
  // Sampling flags are accepted; a seeded sampled reply repeats too.
  const std::string sampled = cmd + " --temp 0.8 --top-k 40 --top-p 0.9 --seed 5 --threads 2";
  CommandResult c = run(sampled);
  ASSERT_EQ(c.code, 0) << c.out;
  EXPECT_EQ(run(sampled).out, c.out);
}

TEST(ChatCli, ReplyIsGenerateOnTheFormattedPrompt) {
  // The phi3 family's format of kMessages, tokenized with special tokens parsed (and the BOS the
  // vocabulary adds), then continued greedily by `infer generate`: the same text as `infer chat`.
  const std::string formatted =
      "<|system|>\nYou are terse.<|end|>\n<|user|>\nHello, who are you?<|end|>\n<|assistant|>\n";
  CommandResult ids = run("printf '%s' " + quote(formatted) + " | " + infer_bin() + " tokenize -m " + phi3_model() +
                          " --parse-special");
  ASSERT_EQ(ids.code, 0) << ids.out;
  ASSERT_EQ(ids.out.rfind("1 32006 ", 0), 0u) << ids.out;  // BOS, then <|system|>
  ids.out.pop_back();                                       // the newline
  CommandResult gen = run(infer_bin() + " generate -m " + phi3_model() + " --prompt-ids " + quote(ids.out) + " -n 8");
  ASSERT_EQ(gen.code, 0) << gen.out;
  CommandResult chat = run(infer_bin() + " chat -m " + phi3_model() + " --messages " + quote(kMessages) + " -n 8");
  ASSERT_EQ(chat.code, 0) << chat.out;
  EXPECT_EQ(chat.out, gen.out);
}

TEST(ChatCli, TemplateOverride) {
  // A model without a template chats once a family is named.
  CommandResult r = run(infer_bin() + " chat -m " + plain_model() + " --messages " + quote(kMessages) +
                        " --template llama2 -n 4");
  EXPECT_EQ(r.code, 0) << r.out;
  r = run(infer_bin() + " chat -m " + phi3_model() + " --messages " + quote(kMessages) + " --template chatml -n 4");
  EXPECT_EQ(r.code, 0) << r.out;
  r = run(infer_bin() + " chat -m " + phi3_model() + " --messages " + quote(kMessages) + " --template chatgpt");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("unknown chat template \"chatgpt\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("chatml"), std::string::npos) << r.out;
}

TEST(ChatCli, ModelWithoutTemplateIsAClearError) {
  CommandResult r = run(infer_bin() + " chat -m " + plain_model() + " --messages " + quote(kMessages));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("the model has no chat template"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--template NAME"), std::string::npos) << r.out;
}

TEST(ChatCli, BadMessagesExitWithTwo) {
  const std::string chat = infer_bin() + " chat -m " + phi3_model() + " --messages ";
  CommandResult r = run(chat + quote(R"([{"role": "user", "content": "hi"})"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("JSON: expected ',' or ']' at offset"), std::string::npos) << r.out;
  r = run(chat + quote(R"([{"role": "user", "content": "hi"}] trailing)"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("unexpected trailing characters"), std::string::npos) << r.out;
  r = run(chat + quote(R"([{"role": "tool", "content": "hi"}])"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("role \"tool\""), std::string::npos) << r.out;
  r = run(chat + quote(R"({"role": "user", "content": "hi"})"));
  EXPECT_EQ(r.code, 2);
  r = run(chat + quote("[]"));
  EXPECT_EQ(r.code, 2);
  r = run(infer_bin() + " chat -m " + phi3_model());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("missing --messages"), std::string::npos) << r.out;
  r = run(infer_bin() + " chat --messages " + quote(kMessages));
  EXPECT_EQ(r.code, 2);
  r = run(chat + quote(kMessages) + " --temp -1");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("temperature"), std::string::npos) << r.out;
  r = run(chat + quote(kMessages) + " --ctx 4");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("exceeds the context"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace pginfer
