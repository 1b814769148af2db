// engine/json.cpp: the strict JSON parser: a recursive descent over bytes, bounded in depth.
#include "engine/json.h"

#include <charconv>
#include <cstdint>
#include <unordered_set>

namespace pginfer {

namespace {

class Parser {
 public:
  Parser(std::string_view text, const JsonOptions& options) : s_(text), opt_(options) {}

  Status parse(JsonValue* out) {
    if (s_.size() >= 3 && (uint8_t)s_[0] == 0xEF && (uint8_t)s_[1] == 0xBB && (uint8_t)s_[2] == 0xBF) {
      return fail("byte-order mark is not allowed", 0);
    }
    skip_ws();
    PGI_RETURN_IF_ERROR(value(out, 0));
    skip_ws();
    if (pos_ != s_.size()) return fail("unexpected trailing characters", pos_);
    return Status::ok_status();
  }

 private:
  Status fail(const std::string& what, size_t at) const {
    return invalid_argument("JSON: " + what + " at offset " + std::to_string(at) +
                            (at >= s_.size() ? " (end of input)" : ""));
  }
  Status expected(const char* what) const { return fail(std::string("expected ") + what, pos_); }

  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }

  void skip_ws() {
    while (!at_end() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }

  // Consumes `word` (null, true, false) or fails.
  Status literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return expected("a value");
    pos_ += word.size();
    return Status::ok_status();
  }

  Status value(JsonValue* v, int depth) {
    if (at_end()) return expected("a value");
    const char c = s_[pos_];
    switch (c) {
      case '{':
        return object(v, depth + 1);
      case '[':
        return array(v, depth + 1);
      case '"':
        v->type = JsonType::String;
        return string(&v->string);
      case 't':
        v->type = JsonType::Bool;
        v->boolean = true;
        return literal("true");
      case 'f':
        v->type = JsonType::Bool;
        v->boolean = false;
        return literal("false");
      case 'n':
        v->type = JsonType::Null;
        return literal("null");
      default:
        if (c == '-' || (c >= '0' && c <= '9')) return number(v);
        return expected("a value");
    }
  }

  Status check_depth(int depth) const {
    if (depth > opt_.max_depth) return fail("nesting deeper than " + std::to_string(opt_.max_depth), pos_);
    return Status::ok_status();
  }

  Status array(JsonValue* v, int depth) {
    PGI_RETURN_IF_ERROR(check_depth(depth));
    v->type = JsonType::Array;
    ++pos_;  // [
    skip_ws();
    if (peek() == ']') {
      ++pos_;
      return Status::ok_status();
    }
    for (;;) {
      skip_ws();
      v->array.emplace_back();
      PGI_RETURN_IF_ERROR(value(&v->array.back(), depth));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return Status::ok_status();
      }
      return expected("',' or ']'");
    }
  }

  Status object(JsonValue* v, int depth) {
    PGI_RETURN_IF_ERROR(check_depth(depth));
    v->type = JsonType::Object;
    ++pos_;  // {
    skip_ws();
    if (peek() == '}') {
      ++pos_;
      return Status::ok_status();
    }
    std::unordered_set<std::string> seen;
    for (;;) {
      skip_ws();
      if (peek() != '"') return expected("a string key");
      const size_t key_at = pos_;
      std::string key;
      PGI_RETURN_IF_ERROR(string(&key));
      if (!seen.insert(key).second) return fail("duplicate key \"" + printable(key) + "\"", key_at);
      skip_ws();
      if (peek() != ':') return expected("':'");
      ++pos_;
      skip_ws();
      v->object.emplace_back(std::move(key), JsonValue());
      PGI_RETURN_IF_ERROR(value(&v->object.back().second, depth));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return Status::ok_status();
      }
      return expected("',' or '}'");
    }
  }

  // A key for a message: at most 40 bytes, control characters and quotes shown as '?'.
  static std::string printable(const std::string& key) {
    std::string r;
    for (char c : key.substr(0, 40)) r += ((uint8_t)c < 0x20 || c == '"') ? '?' : c;
    if (key.size() > 40) r += "...";
    return r;
  }

  static bool is_cont(uint8_t b) { return (b & 0xC0) == 0x80; }

  // Appends code point `cp` (valid, not a surrogate) as UTF-8.
  static void put_utf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back((char)cp);
    } else if (cp < 0x800) {
      out->push_back((char)(0xC0 | (cp >> 6)));
      out->push_back((char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back((char)(0xE0 | (cp >> 12)));
      out->push_back((char)(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back((char)(0x80 | (cp & 0x3F)));
    } else {
      out->push_back((char)(0xF0 | (cp >> 18)));
      out->push_back((char)(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back((char)(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back((char)(0x80 | (cp & 0x3F)));
    }
  }

  // Four hex digits at pos_ (after "\u"); false when they are not.
  bool hex4(uint32_t* out) {
    if (s_.size() - pos_ < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_ + i];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
      else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
      else return false;
    }
    pos_ += 4;
    *out = v;
    return true;
  }

  // The length of the valid UTF-8 sequence of a non-ASCII lead byte at `at`, or 0.
  size_t utf8_length(size_t at) const {
    const size_t left = s_.size() - at;
    const uint8_t b0 = (uint8_t)s_[at];
    auto byte = [&](size_t i) { return i < left ? (uint8_t)s_[at + i] : (uint8_t)0; };
    if (b0 >= 0xC2 && b0 <= 0xDF) return is_cont(byte(1)) ? 2 : 0;
    if (b0 >= 0xE0 && b0 <= 0xEF) {
      const uint8_t b1 = byte(1);
      const uint8_t lo = b0 == 0xE0 ? 0xA0 : 0x80;  // no overlong forms
      const uint8_t hi = b0 == 0xED ? 0x9F : 0xBF;  // no surrogates
      return (b1 >= lo && b1 <= hi && is_cont(byte(2))) ? 3 : 0;
    }
    if (b0 >= 0xF0 && b0 <= 0xF4) {
      const uint8_t b1 = byte(1);
      const uint8_t lo = b0 == 0xF0 ? 0x90 : 0x80;  // no overlong forms
      const uint8_t hi = b0 == 0xF4 ? 0x8F : 0xBF;  // nothing above U+10FFFF
      return (b1 >= lo && b1 <= hi && is_cont(byte(2)) && is_cont(byte(3))) ? 4 : 0;
    }
    return 0;
  }

  Status string(std::string* out) {
    ++pos_;  // opening quote
    for (;;) {
      if (at_end()) return fail("unterminated string", pos_);
      const uint8_t c = (uint8_t)s_[pos_];
      if (c == '"') {
        ++pos_;
        return Status::ok_status();
      }
      if (c < 0x20) return fail("control character in string (escape it)", pos_);
      if (c < 0x80 && c != '\\') {
        out->push_back((char)c);
        ++pos_;
        continue;
      }
      if (c >= 0x80) {
        const size_t n = utf8_length(pos_);
        if (n == 0) return fail("invalid UTF-8", pos_);
        out->append(s_.substr(pos_, n));
        pos_ += n;
        continue;
      }
      // An escape.
      const size_t esc_at = pos_;
      ++pos_;
      if (at_end()) return fail("unterminated string", pos_);
      const char e = s_[pos_++];
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          if (!hex4(&cp)) return fail("invalid \\u escape (four hex digits expected)", esc_at);
          if (cp >= 0xDC00 && cp <= 0xDFFF) return fail("lone low surrogate in \\u escape", esc_at);
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo = 0;
            if (s_.substr(pos_, 2) != "\\u") return fail("lone high surrogate in \\u escape", esc_at);
            pos_ += 2;
            if (!hex4(&lo)) return fail("invalid \\u escape (four hex digits expected)", pos_ - 2);
            if (lo < 0xDC00 || lo > 0xDFFF) return fail("lone high surrogate in \\u escape", esc_at);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put_utf8(cp, out);
          break;
        }
        default:
          return fail("invalid escape", esc_at);
      }
    }
  }

  Status number(JsonValue* v) {
    const size_t start = pos_;
    auto digit = [&]() { return !at_end() && s_[pos_] >= '0' && s_[pos_] <= '9'; };
    if (peek() == '-') ++pos_;
    if (!digit()) return fail("expected a digit", pos_);
    // The position of the first non-zero digit relative to the decimal point, to tell an underflow
    // (the nearest double is zero: accepted) from an overflow (refused).
    int64_t int_digits = 0;
    int64_t first_nonzero = INT64_MIN;  // index among all mantissa digits, or none
    int64_t n_digits = 0;
    if (s_[pos_] == '0') {
      ++pos_;
      ++int_digits;
      ++n_digits;
      if (digit()) return fail("leading zeros are not allowed", start);
    } else {
      while (digit()) {
        if (first_nonzero == INT64_MIN && s_[pos_] != '0') first_nonzero = n_digits;
        ++pos_;
        ++int_digits;
        ++n_digits;
      }
    }
    if (peek() == '.') {
      ++pos_;
      if (!digit()) return fail("expected a digit after '.'", pos_);
      while (digit()) {
        if (first_nonzero == INT64_MIN && s_[pos_] != '0') first_nonzero = n_digits;
        ++pos_;
        ++n_digits;
      }
    }
    int64_t exponent = 0;
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      bool negative = false;
      if (peek() == '+' || peek() == '-') negative = s_[pos_++] == '-';
      if (!digit()) return fail("expected a digit in the exponent", pos_);
      while (digit()) {
        if (exponent < 1000000000) exponent = exponent * 10 + (s_[pos_] - '0');
        ++pos_;
      }
      if (negative) exponent = -exponent;
    }
    v->type = JsonType::Number;
    const char* b = s_.data() + start;
    const char* e = s_.data() + pos_;
    double d = 0.0;
    auto [ptr, ec] = std::from_chars(b, e, d);
    if (ec == std::errc::result_out_of_range) {
      if (first_nonzero == INT64_MIN) {
        d = 0.0;
      } else {
        const int64_t magnitude = int_digits - first_nonzero + exponent;  // decimal digits before the point
        if (magnitude > 0) return fail("number out of range", start);
        d = 0.0;  // underflow: the nearest double is zero
      }
      if (*b == '-') d = -d;
    } else if (ec != std::errc() || ptr != e) {
      return fail("invalid number", start);
    }
    v->number = d;
    return Status::ok_status();
  }

  std::string_view s_;
  const JsonOptions& opt_;
  size_t pos_ = 0;
};

}  // namespace

const JsonValue* JsonValue::find(std::string_view key) const {
  if (type != JsonType::Object) return nullptr;
  for (const auto& [k, v] : object) {
    if (k == key) return &v;
  }
  return nullptr;
}

Status parse_json(std::string_view text, JsonValue* out, const JsonOptions& options) {
  *out = JsonValue();
  if (text.size() > options.max_bytes) {
    return invalid_argument("JSON: input of " + std::to_string(text.size()) + " bytes exceeds the limit of " +
                            std::to_string(options.max_bytes));
  }
  JsonValue v;
  Parser p(text, options);
  PGI_RETURN_IF_ERROR(p.parse(&v));
  *out = std::move(v);
  return Status::ok_status();
}

const char* json_type_name(JsonType type) {
  switch (type) {
    case JsonType::Null: return "null";
    case JsonType::Bool: return "boolean";
    case JsonType::Number: return "number";
    case JsonType::String: return "string";
    case JsonType::Array: return "array";
    case JsonType::Object: return "object";
  }
  return "?";
}

}  // namespace pginfer
