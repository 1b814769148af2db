// engine/json.h: a small strict JSON parser (RFC 8259) into a value tree, for request bodies such as
// chat messages.
//
// Strict means: exactly one value surrounded by optional whitespace (space, tab, LF, CR), no comments,
// no trailing commas, no byte-order mark, no NaN/Infinity, no leading zeros, no control characters
// inside strings, raw bytes checked as UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF),
// \uXXXX escapes with surrogate pairs combined (a lone surrogate is an error), no duplicate keys in an
// object. Nesting and input size are bounded. Every failure is an InvalidArgument status that names the
// byte offset ("JSON: expected ',' or '}' at offset 17"); no input makes the parser crash, throw or
// recurse past its depth limit.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/status.h"

namespace pginfer {

// The kind of a JSON value.
enum class JsonType { Null, Bool, Number, String, Array, Object };

// One JSON value; only the member that matches `type` is meaningful.
struct JsonValue {
  JsonType type = JsonType::Null;
  bool boolean = false;                                 // Bool
  double number = 0.0;                                  // Number (as a double; the nearest one)
  std::string string;                                   // String (UTF-8; may contain NUL from \u0000)
  std::vector<JsonValue> array;                         // Array
  std::vector<std::pair<std::string, JsonValue>> object;  // Object, members in document order

  // The member named `key` of an object, or nullptr (also when this is not an object).
  const JsonValue* find(std::string_view key) const;
};

// Limits of one parse.
struct JsonOptions {
  int max_depth = 64;           // arrays and objects nested at most this deep
  size_t max_bytes = 4u << 20;  // longer input is refused before parsing (bounds the tree to ~200 MB)
};

// Parses `text` (exactly one JSON value) into *out. On failure *out is left null and the status says
// what was expected where.
Status parse_json(std::string_view text, JsonValue* out, const JsonOptions& options = JsonOptions());

// The name of a JSON type as messages use it ("null", "boolean", "number", "string", "array",
// "object").
const char* json_type_name(JsonType type);

}  // namespace pginfer
