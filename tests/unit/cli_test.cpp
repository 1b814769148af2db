// tests/unit/cli_test.cpp: the `infer` tool as a user runs it: outputs, exit codes (1 for failed
// operations, 2 for wrong command lines) and messages for bad input.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "test_commands.h"
#include "test_models.h"

namespace pginfer {
namespace {

using testing::CommandResult;

CommandResult infer(const std::string& args) { return testing::run_command(testing::infer_bin() + " " + args); }

// Runs a shell command line (a pipeline into infer), stdout and stderr together.
CommandResult infer_sh(const std::string& command_line) { return testing::run_command(command_line); }

std::string model() { return testing::synthetic_model("tiny", TensorType::Q8_0); }

TEST(Cli, UsageErrorsExitWithTwo) {
  EXPECT_EQ(infer("").code, 2);
  CommandResult r = infer("frobnicate");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("unknown command"), std::string::npos);
  r = infer("generate -m " + model() + " -p hello --prompt-ids \"1 2\" -n 2");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("give the prompt as"), std::string::npos) << r.out;
  r = infer("generate -m " + model() + " --prompt-ids \"1 2\" -n two --ids");
  EXPECT_EQ(r.code, 2);
  r = infer("synth --shape nope --type Q8_0 --vocab x -o y");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("unknown shape"), std::string::npos) << r.out;
  r = infer("quantize a b Q3_K");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(infer("score -m " + model() + " --bogus 1").code, 2);
}

TEST(Cli, BadTokensAndContextsAreRefused) {
  CommandResult r = infer("generate -m " + model() + " --prompt-ids \"1 32000\" -n 2 --ids");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("outside the vocabulary"), std::string::npos) << r.out;
  r = infer("score -m " + model() + " --ids \"5 -3\" --json");
  EXPECT_EQ(r.code, 2);
  r = infer("generate -m " + model() + " --prompt-ids \"1 2 3 4 5 6\" -n 2 --ctx 4 --ids");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("exceeds the context"), std::string::npos) << r.out;
  r = infer("generate -m " + model() + " --prompt-ids \"1 2\" -n 1000000 --ids");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("context length"), std::string::npos) << r.out;
  r = infer("generate -m " + model() + " --prompt-ids \"1 2\" -n 2 --temp -1 --ids");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("temperature"), std::string::npos) << r.out;
}

TEST(Cli, BadFilesFailWithOne) {
  CommandResult r = infer("info -m /nonexistent/model.gguf");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("cannot open"), std::string::npos) << r.out;
  // The first 1000 bytes of a real model: a truncated file.
  const std::string cut = (std::filesystem::temp_directory_path() / "pginfer-cli-truncated.gguf").string();
  {
    std::ifstream in(model(), std::ios::binary);
    std::string head(1000, '\0');
    in.read(head.data(), 1000);
    std::ofstream(cut, std::ios::binary).write(head.data(), 1000);
  }
  r = infer("info -m " + cut);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("truncated"), std::string::npos) << r.out;
  r = infer("generate -m " + cut + " --prompt-ids \"1\" -n 1 --ids");
  EXPECT_EQ(r.code, 1);
}

TEST(Cli, TextInTextOut) {
  const std::string vocab = testing::shared_dir() + "/vocab/ggml-vocab-llama-spm.gguf";
  CommandResult r = infer("detokenize -m " + vocab + " 1 15043 3186");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "Hello world\n");
  const std::string cmd = "sh -c 'printf \"Hello world\" | " + std::string(PG_INFER_INFER_BIN) + " tokenize -m " + vocab + "'";
  FILE* p = popen(cmd.c_str(), "r");
  char buf[256] = {0};
  const size_t n = fread(buf, 1, sizeof buf - 1, p);
  pclose(p);
  EXPECT_EQ(std::string(buf, n), "1 15043 3186\n");
  r = infer("generate -m " + model() + " -p \"The quick brown fox\" -n 6");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_GT(r.out.size(), 1u);
  EXPECT_EQ(infer("detokenize -m " + vocab + " 1 32000").code, 2);
  // A stop string cuts the text just before it, wherever the token boundaries fall.
  const std::string full = r.out.substr(0, r.out.size() - 1);
  ASSERT_GT(full.size(), 8u);
  const std::string stop = full.substr(full.size() / 2, 3);
  CommandResult cut = infer("generate -m " + model() + " -p \"The quick brown fox\" -n 6 --stop \"" + stop + "\"");
  ASSERT_EQ(cut.code, 0) << cut.out;
  EXPECT_EQ(cut.out, full.substr(0, full.find(stop)) + "\n");
  // Seeded sampling with the whole chain repeats; bad parameters are refused.
  const std::string sampled = "generate -m " + model() + " -p hi -n 8 --temp 0.9 --top-k 40 --top-p 0.95 --min-p 0.02 "
                              "--repeat-penalty 1.1 --seed 9 --ids";
  EXPECT_EQ(infer(sampled).out, infer(sampled).out);
  EXPECT_EQ(infer("generate -m " + model() + " -p hi -n 2 --top-p 1.5").code, 2);
  // Byte-level BPE vocabularies (GPT-2's here) take text too.
  r = infer("generate -m " + testing::synthetic_model("tiny-qwen2", TensorType::Q8_0) + " -p hi -n 2");
  EXPECT_EQ(r.code, 0) << r.out;
}

TEST(Cli, TokenizeBatchGivesOneLinePerNulSeparatedText) {
  const std::string vocab = testing::shared_dir() + "/vocab/ggml-vocab-llama-spm.gguf";
  const std::string tokenize = std::string(PG_INFER_INFER_BIN) + " tokenize -m " + vocab + " --no-bos ";
  // An empty text is an empty line; the last text's NUL is optional.
  for (const char* flag : {"-0", "--null"}) {
    CommandResult r = infer_sh("printf 'Hello world\\000\\000Hello' | " + tokenize + flag);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(r.out, "15043 3186\n\n15043\n");
    r = infer_sh("printf 'Hello world\\000' | " + tokenize + flag);
    EXPECT_EQ(r.out, "15043 3186\n");
  }
  EXPECT_EQ(infer_sh("printf '' | " + tokenize + "-0").out, "");
  EXPECT_EQ(infer_sh("printf 'x' | " + tokenize + "stray").code, 2);
}

TEST(Cli, GenerateScoreInfoAndBench) {
  CommandResult a = infer("generate -m " + model() + " --prompt-ids \"1 450 4996\" -n 8 --ids");
  ASSERT_EQ(a.code, 0) << a.out;
  CommandResult b = infer("generate -m " + model() + " --prompt-ids \"1 450 4996\" -n 8 --ids --threads 1");
  EXPECT_EQ(a.out, b.out) << "greedy output depends on the thread count";
  int count = 0;
  for (char c : a.out) count += c == ' ';
  EXPECT_EQ(count, 7) << a.out;
  CommandResult s1 = infer("generate -m " + model() + " --prompt-ids \"1 450\" -n 8 --ids --temp 0.9 --seed 5");
  CommandResult s2 = infer("generate -m " + model() + " --prompt-ids \"1 450\" -n 8 --ids --temp 0.9 --seed 5");
  EXPECT_EQ(s1.out, s2.out);
  CommandResult sc = infer("score -m " + model() + " --ids \"1 450 4996 17354\" --json");
  ASSERT_EQ(sc.code, 0) << sc.out;
  EXPECT_EQ(sc.out.rfind("{\"argmax\": [", 0), 0u) << sc.out;
  EXPECT_NE(sc.out.find("\"ppl\": "), std::string::npos);
  CommandResult info = infer("info -m " + model());
  ASSERT_EQ(info.code, 0);
  EXPECT_NE(info.out.find("architecture:    llama"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("vocab size:      32000"), std::string::npos) << info.out;
  CommandResult bench = infer("bench -m " + model() + " --prompt 16 --gen 4 --json");
  ASSERT_EQ(bench.code, 0) << bench.out;
  EXPECT_NE(bench.out.find("\"prefill_tok_s\": "), std::string::npos) << bench.out;
  EXPECT_NE(bench.out.find("\"decode_tok_s\": "), std::string::npos) << bench.out;
}

}  // namespace
}  // namespace pginfer
