// JSON through nlohmann-json, behind a small interface: its header costs seconds per
// translation unit, so only json.cpp includes it. Used for safetensors headers, metrics.jsonl
// and sweep results. The reader is stricter than nlohmann's default (duplicate keys, deep
// nesting); errors are mnemo::Error "<what>: bad JSON at byte N: ...".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mnemo::experiments::json {

// A parsed document. Numbers keep their text, so that a caller can refuse "1.5" where it
// needs an integer and read a uint64 without a round trip through double.
struct Json {
  enum class Kind { null, boolean, number, string, array, object } kind = Kind::null;
  bool boolean = false;
  std::string text;  // a string's value, or a number's literal
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;  // in file order; keys unique

  // Defined in json.cpp, where Json is complete: clang instantiates pair<string, Json> for
  // implicit ones while Json is still being defined, and refuses it.
  Json();
  Json(const Json&);
  Json(Json&&) noexcept;
  Json& operator=(const Json&);
  Json& operator=(Json&&) noexcept;
  ~Json();
};

const char* kind_name(Json::Kind k);
bool valid_utf8(std::string_view s);
// Parses a whole document (surrounding whitespace allowed); throws "<what>: bad JSON at byte N: ..."
// with N the 0-based offset of the byte where the problem was found.
Json parse(std::string_view s, const std::string& what);
// Appends s as a JSON string literal; s must be valid UTF-8.
void json_string(std::string& out, std::string_view s);
// One JSON object built field by field, in insertion order (metrics.jsonl rows, summaries).
// Non-finite numbers are written as null: JSON has no NaN.
class ObjectWriter {
 public:
  ObjectWriter& add(std::string_view key, double v);
  ObjectWriter& add(std::string_view key, int64_t v);
  ObjectWriter& add(std::string_view key, std::string_view v);
  ObjectWriter& add_raw(std::string_view key, std::string_view json);  // an already-encoded value
  std::string str() const { return out_ + "}"; }

 private:
  void key(std::string_view k);
  std::string out_ = "{";
};

// A non-negative integer that fits in uint64_t, from a JSON number's text.
bool to_u64(std::string_view text, uint64_t& out);

}  // namespace mnemo::experiments::json
