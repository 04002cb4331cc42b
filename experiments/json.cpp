// The strict JSON subset behind safetensors headers: objects, arrays, strings with
// escapes (surrogate pairs checked), numbers kept as text, true/false/null; duplicate keys,
// bad escapes, lone surrogates and trailing junk are errors.
#include "experiments/json.h"

#include <cmath>
#include <cstdio>

#include <charconv>
#include <set>
#include <string>

#include "autograd/error.h"

namespace mnemo::experiments::json {
namespace {

constexpr int kMaxJsonDepth = 16;  // a safetensors header nests three deep

}  // namespace

// ---- UTF-8 (the header must be valid UTF-8; so must every name we write) ----

bool valid_utf8(std::string_view s) {
  static const uint32_t min_cp[] = {0, 0x80, 0x800, 0x10000};  // below these: overlong
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int n = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : -1;
    if (n < 0 || i + size_t(n) >= s.size() + (n == 0)) return false;  // bad lead byte, or cut short
    uint32_t cp = n == 0 ? c : c & (0x3Fu >> n);
    for (int k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + size_t(k)]);
      if ((d >> 6) != 0x2) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += size_t(n) + 1;
  }
  return true;
}

// ---- JSON: just enough for a safetensors header, and strict about it ----



const char* kind_name(Json::Kind k) {
  switch (k) {
    case Json::Kind::null: return "null";
    case Json::Kind::boolean: return "a boolean";
    case Json::Kind::number: return "a number";
    case Json::Kind::string: return "a string";
    case Json::Kind::array: return "an array";
    case Json::Kind::object: return "an object";
  }
  return "?";
}

class JsonParser {
 public:
  JsonParser(std::string_view s, const std::string& what) : s_(s), what_(what) {}

  Json document() {
    skip_ws();
    Json v = value(0);
    skip_ws();  // the writer may pad the header with spaces
    if (i_ != s_.size()) fail("unexpected '" + std::string(1, s_[i_]) + "' after the header object");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    MNEMO_FAIL(what_ << ": bad JSON at byte " << i_ << ": " << msg);
  }
  bool at_end() const { return i_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[i_]; }
  void skip_ws() {
    while (!at_end() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  void expect(char c) {
    if (peek() != c || at_end()) fail(std::string("expected '") + c + "'" + (at_end() ? " but the header ended" : ""));
    ++i_;
  }

  Json value(int depth) {
    if (depth > kMaxJsonDepth) fail("nested too deeply");
    if (at_end()) fail("expected a value but the header ended");
    switch (peek()) {
      case '{': return object(depth);
      case '[': return array(depth);
      case '"': {
        Json j;
        j.kind = Json::Kind::string;
        j.text = string();
        return j;
      }
      case 't': return literal("true", Json::Kind::boolean, true);
      case 'f': return literal("false", Json::Kind::boolean, false);
      case 'n': return literal("null", Json::Kind::null, false);
      default: return number();
    }
  }

  Json literal(std::string_view word, Json::Kind kind, bool b) {
    if (s_.substr(i_, word.size()) != word) fail("unknown literal");
    i_ += word.size();
    Json j;
    j.kind = kind;
    j.boolean = b;
    return j;
  }

  Json object(int depth) {
    Json j;
    j.kind = Json::Kind::object;
    expect('{');
    skip_ws();
    if (peek() == '}') return ++i_, j;
    std::set<std::string> seen;
    for (;;) {
      skip_ws();
      if (peek() != '"') fail("expected a string key");
      std::string key = string();
      if (!seen.insert(key).second) fail("duplicate key \"" + key + "\"");
      skip_ws();
      expect(':');
      skip_ws();
      j.members.emplace_back(std::move(key), value(depth + 1));
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      expect('}');
      return j;
    }
  }

  Json array(int depth) {
    Json j;
    j.kind = Json::Kind::array;
    expect('[');
    skip_ws();
    if (peek() == ']') return ++i_, j;
    for (;;) {
      skip_ws();
      j.items.push_back(value(depth + 1));
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      expect(']');
      return j;
    }
  }

  // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?  kept as text; callers convert.
  Json number() {
    const size_t start = i_;
    auto digits = [&] {
      const size_t d = i_;
      while (!at_end() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      return i_ - d;
    };
    if (peek() == '-') ++i_;
    if (peek() == '0') {
      ++i_;
    } else if (digits() == 0) {
      i_ = start;
      fail("expected a value");
    }
    if (peek() == '.') {
      ++i_;
      if (digits() == 0) fail("expected digits after '.'");
    }
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      if (digits() == 0) fail("expected digits in the exponent");
    }
    Json j;
    j.kind = Json::Kind::number;
    j.text = std::string(s_.substr(start, i_ - start));
    return j;
  }

  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      if (at_end()) fail("unterminated string");
      const char c = s_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (at_end()) fail("unterminated escape");
      const char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': append_utf8(out, code_point()); break;
        default: fail(std::string("unknown escape '\\") + e + "'");
      }
    }
  }

  uint32_t hex4() {
    if (i_ + 4 > s_.size()) fail("short \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = s_[i_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= uint32_t(h - '0');
      else if (h >= 'a' && h <= 'f') v |= uint32_t(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= uint32_t(h - 'A' + 10);
      else fail("bad hex digit in \\u escape");
    }
    return v;
  }

  // After "\u": one code point, joining a surrogate pair.
  uint32_t code_point() {
    const uint32_t hi = hex4();
    if (hi >= 0xDC00 && hi <= 0xDFFF) fail("lone low surrogate");
    if (hi < 0xD800 || hi > 0xDBFF) return hi;
    if (s_.substr(i_, 2) != "\\u") fail("high surrogate without its low half");
    i_ += 2;
    const uint32_t lo = hex4();
    if (lo < 0xDC00 || lo > 0xDFFF) fail("high surrogate without its low half");
    return 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }

  std::string_view s_;
  const std::string& what_;
  size_t i_ = 0;
};

void json_string(std::string& out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      out += "\\u00";
      out += hex[u >> 4];
      out += hex[u & 0xF];
    } else {
      out += c;  // UTF-8 passes through (checked by the caller)
    }
  }
  out += '"';
}

// A non-negative integer that fits in uint64_t, from a JSON number's text.
bool to_u64(std::string_view text, uint64_t& out) {
  if (text.empty() || text[0] == '-') return false;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && p == text.data() + text.size();
}

Json parse(std::string_view s, const std::string& what) { return JsonParser(s, what).document(); }

void ObjectWriter::key(std::string_view k) {
  if (out_.size() > 1) out_ += ',';
  json_string(out_, k);
  out_ += ':';
}

ObjectWriter& ObjectWriter::add(std::string_view k, double v) {
  key(k);
  if (!std::isfinite(v)) {
    out_ += "null";
    return *this;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  out_ += buf;
  return *this;
}

ObjectWriter& ObjectWriter::add(std::string_view k, int64_t v) {
  key(k);
  out_ += std::to_string(v);
  return *this;
}

ObjectWriter& ObjectWriter::add(std::string_view k, std::string_view v) {
  key(k);
  json_string(out_, v);
  return *this;
}

ObjectWriter& ObjectWriter::add_raw(std::string_view k, std::string_view j) {
  key(k);
  out_ += j;
  return *this;
}

}  // namespace mnemo::experiments::json
