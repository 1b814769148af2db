// tests/unit/test_commands.h: running the `infer` tool and shell pipelines from tests.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace pginfer::testing {

// What a command printed and its exit code.
struct CommandResult {
  int code;
  std::string out;  // stdout, with stderr unless the command discarded it
};

// Runs a shell command line; stderr joins stdout unless `with_stderr` is false (then it is discarded).
inline CommandResult run_command(const std::string& command_line, bool with_stderr = true) {
  FILE* p = popen(("(" + command_line + ")" + (with_stderr ? " 2>&1" : " 2>/dev/null")).c_str(), "r");
  CommandResult r{-1, ""};
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return r;
}

// The `infer` binary the build made.
inline std::string infer_bin() { return PG_INFER_INFER_BIN; }

// `s` single-quoted for the shell.
inline std::string shell_quote(const std::string& s) {
  std::string r = "'";
  for (char c : s) r += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return r + "'";
}

}  // namespace pginfer::testing
