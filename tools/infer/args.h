// tools/infer/args.h: command-line flags of one `infer` subcommand, parsed and checked.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pginfer::cli {

// Exit codes of the tool.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;  // the operation failed (bad model file, out of memory, ...)
constexpr int kExitUsage = 2;    // the command line is wrong

// Flags as `--name value` (or `-x value`) and bare switches, plus positional arguments.
class Args {
 public:
  // Parses argv[first..argc); `switches` are the flags that take no value. Returns false (and sets
  // error()) on a flag that is not in `known`, or a missing value.
  bool parse(int argc, char** argv, int first, const std::vector<std::string>& known,
             const std::vector<std::string>& switches);

  // Whether flag `name` (any of its spellings, e.g. "-m" or "--model") was given.
  bool has(const std::string& name) const;
  // The flag's value, or `fallback`.
  std::string str(const std::string& name, const std::string& fallback = "") const;
  // The flag's value as an integer in [lo, hi]; false and error() set when it is not one.
  bool integer(const std::string& name, int64_t fallback, int64_t lo, int64_t hi, int64_t* out);
  // The flag's value as a finite number; false and error() set otherwise.
  bool number(const std::string& name, double fallback, double* out);
  // Positional arguments.
  const std::vector<std::string>& positional() const { return positional_; }
  // The last error.
  const std::string& error() const { return error_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
  std::string error_;
};

// Parses "1 2 3" (spaces or commas) into token ids; false on anything that is not an integer in
// [-2^31, 2^31). Range checks against the vocabulary happen in the engine.
bool parse_ids(const std::string& text, std::vector<int32_t>* out, std::string* error);

}  // namespace pginfer::cli
