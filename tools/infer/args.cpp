// tools/infer/args.cpp: flag parsing.
#include "tools/infer/args.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>

namespace pginfer::cli {

bool Args::parse(int argc, char** argv, int first, const std::vector<std::string>& known,
                 const std::vector<std::string>& switches) {
  for (int i = first; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.size() > 1 && a[0] == '-' && !(a.size() > 1 && (std::isdigit((unsigned char)a[1]) || a[1] == '.'))) {
      if (std::find(switches.begin(), switches.end(), a) != switches.end()) {
        values_[a] = "1";
        continue;
      }
      if (std::find(known.begin(), known.end(), a) == known.end()) {
        error_ = "unknown option " + a;
        return false;
      }
      if (i + 1 >= argc) {
        error_ = "option " + a + " needs a value";
        return false;
      }
      values_[a] = argv[++i];
    } else {
      positional_.push_back(a);
    }
  }
  return true;
}

bool Args::has(const std::string& name) const { return values_.count(name) != 0; }

std::string Args::str(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

bool Args::integer(const std::string& name, int64_t fallback, int64_t lo, int64_t hi, int64_t* out) {
  auto it = values_.find(name);
  if (it == values_.end()) {
    *out = fallback;
    return true;
  }
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(it->second.c_str(), &end, 10);
  if (errno != 0 || end == it->second.c_str() || *end != '\0' || v < lo || v > hi) {
    error_ = "option " + name + " must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi) +
             ", not \"" + it->second + "\"";
    return false;
  }
  *out = v;
  return true;
}

bool Args::number(const std::string& name, double fallback, double* out) {
  auto it = values_.find(name);
  if (it == values_.end()) {
    *out = fallback;
    return true;
  }
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  if (end == it->second.c_str() || *end != '\0' || !std::isfinite(v)) {
    error_ = "option " + name + " must be a number, not \"" + it->second + "\"";
    return false;
  }
  *out = v;
  return true;
}

bool parse_ids(const std::string& text, std::vector<int32_t>* out, std::string* error) {
  out->clear();
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ' || text[i] == ',' || text[i] == '\t' || text[i] == '\n') {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && text[j] != ' ' && text[j] != ',' && text[j] != '\t' && text[j] != '\n') ++j;
    const std::string tok = text.substr(i, j - i);
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(tok.c_str(), &end, 10);
    if (errno != 0 || *end != '\0' || v < INT32_MIN || v > INT32_MAX) {
      *error = "\"" + tok + "\" is not a token id";
      return false;
    }
    out->push_back((int32_t)v);
    i = j;
  }
  return true;
}

}  // namespace pginfer::cli
