// tests/unit/json_test.cpp: the strict JSON parser: valid documents, every kind of invalid one (with the
// offset its error names), escapes and surrogates, UTF-8 checks, depth and size limits, and random
// bytes that must never crash it.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

#include "engine/json.h"

namespace pginfer {
namespace {

JsonValue ok(std::string_view text) {
  JsonValue v;
  Status st = parse_json(text, &v);
  EXPECT_TRUE(st.ok()) << "\"" << text << "\": " << st.message();
  return v;
}

// The error message for `text`, which must fail with InvalidArgument.
std::string bad(std::string_view text) {
  JsonValue v;
  Status st = parse_json(text, &v);
  EXPECT_FALSE(st.ok()) << "accepted: \"" << text << "\"";
  EXPECT_EQ(st.code(), StatusCode::InvalidArgument) << text;
  EXPECT_EQ(v.type, JsonType::Null);
  return st.message();
}

TEST(Json, Scalars) {
  EXPECT_EQ(ok("null").type, JsonType::Null);
  EXPECT_TRUE(ok("true").boolean);
  EXPECT_EQ(ok(" false ").type, JsonType::Bool);
  EXPECT_FALSE(ok("false").boolean);
  EXPECT_EQ(ok("0").number, 0.0);
  EXPECT_EQ(ok("-0").number, 0.0);
  EXPECT_EQ(ok("123").number, 123.0);
  EXPECT_EQ(ok("-12.5e2").number, -1250.0);
  EXPECT_EQ(ok("1E+2").number, 100.0);
  EXPECT_EQ(ok("0.25").number, 0.25);
  EXPECT_EQ(ok("1e-400").number, 0.0);  // underflow: the nearest double
  EXPECT_EQ(ok("0.0000000000000000000000000000000001e-300").number, 0.0);
  EXPECT_EQ(ok("\"abc\"").string, "abc");
  EXPECT_EQ(ok("\t\r\n \"\" \n").string, "");
}

TEST(Json, ContainersKeepOrder) {
  JsonValue v = ok(R"({"b": 1, "a": [true, null, "x", {"c": []}], "e": {}})");
  ASSERT_EQ(v.type, JsonType::Object);
  ASSERT_EQ(v.object.size(), 3u);
  EXPECT_EQ(v.object[0].first, "b");
  EXPECT_EQ(v.object[1].first, "a");
  EXPECT_EQ(v.object[2].first, "e");
  const JsonValue* a = v.find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->array.size(), 4u);
  EXPECT_EQ(a->array[2].string, "x");
  EXPECT_EQ(a->array[3].find("c")->type, JsonType::Array);
  EXPECT_EQ(v.find("zz"), nullptr);
  EXPECT_EQ(a->find("c"), nullptr);  // not an object
  EXPECT_EQ(ok("[]").array.size(), 0u);
  EXPECT_EQ(ok("[ [ ] , { } ]").array.size(), 2u);
}

TEST(Json, Escapes) {
  EXPECT_EQ(ok(R"("\"\\\/\b\f\n\r\t")").string, "\"\\/\b\f\n\r\t");
  EXPECT_EQ(ok(R"("\u0041\u00e9\u20AC")").string, "A\xC3\xA9\xE2\x82\xAC");
  EXPECT_EQ(ok(R"("\ud83d\ude00")").string, "\xF0\x9F\x98\x80");  // U+1F600 from a surrogate pair
  EXPECT_EQ(ok(R"("\uDBFF\uDFFF")").string, "\xF4\x8F\xBF\xBF");  // U+10FFFF
  std::string nul = ok(R"("a\u0000b")").string;
  EXPECT_EQ(nul, std::string("a\0b", 3));
  EXPECT_EQ(ok("\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"").string, "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  EXPECT_EQ(ok("\"\x7F\"").string, "\x7F");
}

TEST(Json, LoneSurrogatesAreErrors) {
  EXPECT_NE(bad(R"("\ud83d")").find("lone high surrogate"), std::string::npos);
  EXPECT_NE(bad(R"("\ud83dx")").find("lone high surrogate"), std::string::npos);
  EXPECT_NE(bad(R"("\ud83d\u0041")").find("lone high surrogate"), std::string::npos);
  EXPECT_NE(bad(R"("\ude00")").find("lone low surrogate in \\u escape at offset 1"), std::string::npos);
  EXPECT_NE(bad(R"("\ud83d\ud83d")").find("lone high surrogate"), std::string::npos);
  EXPECT_NE(bad(R"("\ud83d\u12")").find("four hex digits"), std::string::npos);
}

TEST(Json, InvalidDocumentsNameTheOffset) {
  EXPECT_EQ(bad(R"({"a": 1, "b": 2 "c": 3})"), "JSON: expected ',' or '}' at offset 16");
  EXPECT_EQ(bad("[1, 2"), "JSON: expected ',' or ']' at offset 5 (end of input)");
  EXPECT_EQ(bad(""), "JSON: expected a value at offset 0 (end of input)");
  EXPECT_EQ(bad("   "), "JSON: expected a value at offset 3 (end of input)");
  EXPECT_EQ(bad("[1,]"), "JSON: expected a value at offset 3");
  EXPECT_EQ(bad("{\"a\":1,}"), "JSON: expected a string key at offset 7");
  EXPECT_EQ(bad("{'a':1}"), "JSON: expected a string key at offset 1");
  EXPECT_EQ(bad("{\"a\" 1}"), "JSON: expected ':' at offset 5");
  EXPECT_EQ(bad("{1:2}"), "JSON: expected a string key at offset 1");
  EXPECT_EQ(bad("tru"), "JSON: expected a value at offset 0");
  EXPECT_EQ(bad("nul"), "JSON: expected a value at offset 0");
  EXPECT_EQ(bad("True"), "JSON: expected a value at offset 0");
  EXPECT_EQ(bad("NaN"), "JSON: expected a value at offset 0");
  EXPECT_EQ(bad("Infinity"), "JSON: expected a value at offset 0");
  EXPECT_EQ(bad("01"), "JSON: leading zeros are not allowed at offset 0");
  EXPECT_EQ(bad("-"), "JSON: expected a digit at offset 1 (end of input)");
  EXPECT_EQ(bad("+1"), "JSON: expected a value at offset 0");
  EXPECT_EQ(bad("1."), "JSON: expected a digit after '.' at offset 2 (end of input)");
  EXPECT_EQ(bad(".5"), "JSON: expected a value at offset 0");
  EXPECT_EQ(bad("1e"), "JSON: expected a digit in the exponent at offset 2 (end of input)");
  EXPECT_EQ(bad("1e999"), "JSON: number out of range at offset 0");
  EXPECT_EQ(bad("-1e400"), "JSON: number out of range at offset 0");
  EXPECT_EQ(bad("\"abc"), "JSON: unterminated string at offset 4 (end of input)");
  EXPECT_EQ(bad("\"a\nb\""), "JSON: control character in string (escape it) at offset 2");
  EXPECT_EQ(bad("\"\\x\""), "JSON: invalid escape at offset 1");
  EXPECT_EQ(bad("\"\\"), "JSON: unterminated string at offset 2 (end of input)");
  EXPECT_EQ(bad("// c\n1"), "JSON: expected a value at offset 0");
  EXPECT_EQ(bad("\xEF\xBB\xBF{}"), "JSON: byte-order mark is not allowed at offset 0");
  EXPECT_EQ(bad("{\"a\":1,\"a\":2}"), "JSON: duplicate key \"a\" at offset 7");
  EXPECT_EQ(bad("[1]\f"), "JSON: unexpected trailing characters at offset 3");
}

TEST(Json, TrailingGarbageIsRefused) {
  EXPECT_EQ(bad("{} x"), "JSON: unexpected trailing characters at offset 3");
  EXPECT_EQ(bad("1 2"), "JSON: unexpected trailing characters at offset 2");
  EXPECT_EQ(bad("[] []"), "JSON: unexpected trailing characters at offset 3");
  EXPECT_EQ(bad(std::string("null\0", 5)), "JSON: unexpected trailing characters at offset 4");
  EXPECT_EQ(bad("\"a\"\""), "JSON: unexpected trailing characters at offset 3");
}

TEST(Json, InvalidUtf8IsRefused) {
  EXPECT_EQ(bad("\"\x80\""), "JSON: invalid UTF-8 at offset 1");             // lone continuation byte
  EXPECT_EQ(bad("\"\xC0\xAF\""), "JSON: invalid UTF-8 at offset 1");         // overlong '/'
  EXPECT_EQ(bad("\"\xE0\x80\xAF\""), "JSON: invalid UTF-8 at offset 1");     // overlong
  EXPECT_EQ(bad("\"\xED\xA0\x80\""), "JSON: invalid UTF-8 at offset 1");     // encoded surrogate
  EXPECT_EQ(bad("\"\xF4\x90\x80\x80\""), "JSON: invalid UTF-8 at offset 1"); // above U+10FFFF
  EXPECT_EQ(bad("\"\xF5\x80\x80\x80\""), "JSON: invalid UTF-8 at offset 1");
  EXPECT_EQ(bad("\"ab\xC3\""), "JSON: invalid UTF-8 at offset 3");          // truncated sequence
  EXPECT_EQ(bad("\"\xE2\x82"), "JSON: invalid UTF-8 at offset 1");          // truncated at the end
  EXPECT_EQ(bad("\xC3\xA9"), "JSON: expected a value at offset 0");         // outside a string
}

TEST(Json, DepthIsLimited) {
  std::string ok64(64, '['), bad65(65, '[');
  ok64 += std::string(64, ']');
  bad65 += std::string(65, ']');
  EXPECT_EQ(ok(ok64).type, JsonType::Array);
  EXPECT_EQ(bad(bad65), "JSON: nesting deeper than 64 at offset 64");
  std::string objects;
  for (int i = 0; i < 65; ++i) objects += "{\"a\":";
  objects += "1" + std::string(65, '}');
  EXPECT_NE(bad(objects).find("nesting deeper than 64"), std::string::npos);
  // Far deeper than any stack could take if the parser recursed without a bound.
  EXPECT_NE(bad(std::string(1000000, '[')).find("nesting deeper than 64"), std::string::npos);
  JsonOptions o;
  o.max_depth = 2;
  JsonValue v;
  EXPECT_TRUE(parse_json("[[1]]", &v, o).ok());
  EXPECT_FALSE(parse_json("[[[1]]]", &v, o).ok());
}

TEST(Json, SizeIsLimited) {
  JsonOptions o;
  o.max_bytes = 10;
  JsonValue v;
  EXPECT_TRUE(parse_json("[1,2,3,4]", &v, o).ok());
  Status st = parse_json("[1,2,3,4,5]", &v, o);
  EXPECT_EQ(st.message(), "JSON: input of 11 bytes exceeds the limit of 10");
}

TEST(Json, RandomBytesNeverCrash) {
  // Random mutations of a valid document: every outcome is either a value or an InvalidArgument.
  const std::string base =
      R"({"messages": [{"role": "user", "content": "h\u00e9llo \ud83d\ude00"}, 1.5e3, [true, null]]})";
  std::mt19937 rng(1234);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = base;
    const int edits = 1 + (int)(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % (s.size() + 1);
      switch (rng() % 3) {
        case 0: if (at < s.size()) s[at] = (char)(rng() & 0xFF); break;
        case 1: s.insert(at, 1, "{}[]\",:\\u0e-"[rng() % 13]); break;
        default: if (at < s.size()) s.erase(at, 1); break;
      }
    }
    JsonValue v;
    Status st = parse_json(s, &v);
    if (st.ok()) {
      ++accepted;
    } else {
      EXPECT_EQ(st.code(), StatusCode::InvalidArgument);
    }
  }
  EXPECT_GT(accepted, 0);
  for (int i = 0; i < 5000; ++i) {
    std::string s(rng() % 64, '\0');
    for (char& c : s) c = (char)(rng() & 0xFF);
    JsonValue v;
    Status st = parse_json(s, &v);
    if (!st.ok()) {
      EXPECT_EQ(st.code(), StatusCode::InvalidArgument);
    }
  }
}

}  // namespace
}  // namespace pginfer
