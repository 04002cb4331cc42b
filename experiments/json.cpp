// nlohmann-json's SAX parser fills our small Json tree. Going through SAX rather than its DOM
// lets us refuse what nlohmann accepts silently: a repeated key (it keeps the last; a header
// with two entries for one tensor must not load either) and absurd nesting (our tree is freed
// recursively). nlohmann itself refuses invalid UTF-8, control characters, bad escapes, lone
// surrogates and anything after the document.
#include "experiments/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "autograd/error.h"

namespace mnemo::experiments::json {
namespace {

constexpr int kMaxJsonDepth = 16;  // a safetensors header nests three deep

// A const char* that also records how far nlohmann's lexer has read: the SAX callbacks are not
// told where they are, and a duplicate key is reported with its byte like any other error.
struct CountingIter {
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  const char* p;
  const char** read;
  reference operator*() const { return *p; }
  CountingIter& operator++() {
    *read = ++p;
    return *this;
  }
  bool operator==(const CountingIter& o) const { return p == o.p; }
  bool operator!=(const CountingIter& o) const { return p != o.p; }
};

class TreeBuilder : public nlohmann::json_sax<nlohmann::json> {
 public:
  TreeBuilder(const char* start, const char* const* read) : start_(start), read_(read) {}

  Json root;
  std::string error;  // set when parsing stopped
  size_t error_at = 0;

  bool null() override { return add(Json{}); }
  bool boolean(bool v) override {
    Json j = leaf(Json::Kind::boolean);
    j.boolean = v;
    return add(std::move(j));
  }
  bool number_integer(number_integer_t v) override { return number(std::to_string(v)); }
  bool number_unsigned(number_unsigned_t v) override { return number(std::to_string(v)); }
  bool number_float(number_float_t, const string_t& literal) override { return number(literal); }
  bool string(string_t& s) override { return add(leaf(Json::Kind::string, std::move(s))); }
  bool binary(binary_t&) override { return fail("binary values are not JSON"); }

  bool start_object(std::size_t) override {
    if (!open(Json::Kind::object)) return false;
    keys_.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    if (!keys_.back().insert(k).second) return fail("duplicate key \"" + k + "\"");
    key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    keys_.pop_back();
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return open(Json::Kind::array); }
  bool end_array() override {
    stack_.pop_back();
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    // what() is "[json.exception.parse_error.101] parse error at line 1, column 5: <the reason>";
    // the line and column of a one-line header add nothing to the byte offset.
    std::string why = e.what();
    if (const size_t col = why.find(", column "); col != std::string::npos)
      if (const size_t colon = why.find(": ", col); colon != std::string::npos) why = why.substr(colon + 2);
    error = why;
    error_at = position > 0 ? position - 1 : 0;  // nlohmann counts bytes read, including the bad one
    return false;
  }

 private:
  bool fail(std::string why) {
    error = std::move(why);
    error_at = *read_ > start_ ? size_t(*read_ - start_) - 1 : 0;
    return false;
  }
  static Json leaf(Json::Kind kind, std::string text = {}) {
    Json j;
    j.kind = kind;
    j.text = std::move(text);
    return j;
  }
  bool number(std::string literal) { return add(leaf(Json::Kind::number, std::move(literal))); }

  // Places v in the innermost open array or object (or as the root) and returns where it went.
  // Pointers on the stack stay valid: a container only grows while it is the innermost one.
  Json* place(Json v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    Json& top = *stack_.back();
    if (top.kind == Json::Kind::array) return &top.items.emplace_back(std::move(v));
    return &top.members.emplace_back(std::move(key_), std::move(v)).second;
  }
  bool add(Json v) {
    place(std::move(v));
    return true;
  }
  bool open(Json::Kind kind) {
    if (stack_.size() >= size_t(kMaxJsonDepth)) return fail("nested too deeply");
    stack_.push_back(place(leaf(kind)));
    return true;
  }

  const char* start_;
  const char* const* read_;
  std::vector<Json*> stack_;
  std::vector<std::unordered_set<std::string>> keys_;
  std::string key_;
};

}  // namespace

Json::Json() = default;
Json::Json(const Json&) = default;
Json::Json(Json&&) noexcept = default;
Json& Json::operator=(const Json&) = default;
Json& Json::operator=(Json&&) noexcept = default;
Json::~Json() = default;

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

Json parse(std::string_view s, const std::string& what) {
  const char* read = s.data();
  TreeBuilder b(s.data(), &read);
  const CountingIter first{s.data(), &read}, last{s.data() + s.size(), &read};
  if (!nlohmann::json::sax_parse(first, last, &b)) MNEMO_FAIL(what << ": bad JSON at byte " << b.error_at << ": " << b.error);
  return std::move(b.root);
}

// nlohmann's writer refuses a string that is not UTF-8 (type_error 316), with the same
// decoder its reader uses: one definition of valid for both directions.
bool valid_utf8(std::string_view s) {
  try {
    (void)nlohmann::json(std::string(s)).dump();
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

void json_string(std::string& out, std::string_view s) {
  try {
    out += nlohmann::json(std::string(s)).dump();
  } catch (const nlohmann::json::type_error&) {
    MNEMO_FAIL("[json] cannot write a string that is not valid UTF-8");
  }
}

bool to_u64(std::string_view text, uint64_t& out) {
  if (text.empty() || text[0] == '-') return false;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && p == text.data() + text.size();
}

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
  // Metrics are float sums: 9 significant digits hold a float exactly, and nlohmann writes the
  // shortest text that reads back as the rounded value, so lines stay short.
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  out_ += nlohmann::json(std::strtod(buf, nullptr)).dump();
  return *this;
}

ObjectWriter& ObjectWriter::add(std::string_view k, int64_t v) {
  key(k);
  out_ += nlohmann::json(v).dump();
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
