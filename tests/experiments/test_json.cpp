// experiments/json: nlohmann-json underneath, with the strictness safetensors headers need on
// top (repeated keys, depth) and errors that name the source and the byte.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <limits>
#include <string>

#include "autograd/error.h"
#include "experiments/json.h"

using namespace mnemo;
using namespace mnemo::experiments::json;

namespace {

std::string error_of(const std::string& text) {
  try {
    parse(text, "src");
  } catch (const Error& e) {
    return e.what();
  }
  return "(accepted)";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(json)

BOOST_AUTO_TEST_CASE(documents_keep_order_and_number_literals) {
  const Json j = parse(R"( {"b": [1, -2, 18446744073709551615, 1.50, 1e3], "a": {"s": "x\u00e9\ud83d\ude00", "t": true, "n": null}} )", "t");
  BOOST_TEST(int(j.kind) == int(Json::Kind::object));
  BOOST_TEST(j.members.size() == 2u);
  BOOST_TEST(j.members[0].first == "b");  // file order, not sorted
  const auto& nums = j.members[0].second.items;
  BOOST_TEST(nums.size() == 5u);
  BOOST_TEST(nums[1].text == "-2");
  BOOST_TEST(nums[3].text == "1.50");  // a float keeps its literal
  uint64_t v = 0;
  BOOST_TEST(to_u64(nums[2].text, v));
  BOOST_TEST(v == std::numeric_limits<uint64_t>::max());
  BOOST_TEST(!to_u64(nums[1].text, v));
  BOOST_TEST(!to_u64(nums[3].text, v));
  BOOST_TEST(!to_u64(nums[4].text, v));
  const auto& a = j.members[1].second.members;
  BOOST_TEST(a[0].second.text == "x\xc3\xa9\xf0\x9f\x98\x80");
  BOOST_TEST(a[1].second.boolean);
  BOOST_TEST(int(a[2].second.kind) == int(Json::Kind::null));
}

BOOST_AUTO_TEST_CASE(errors_name_the_source_and_the_byte) {
  BOOST_TEST(error_of(R"({"w":1,"w":2})") == "src: bad JSON at byte 9: duplicate key \"w\"");
  BOOST_TEST(error_of(R"({"a":{"w":1},"b":{"w":2}})") == "(accepted)");  // one key per object
  BOOST_TEST(error_of(R"({"a":[{"k":1,"k":1}]})").find("byte 15: duplicate key \"k\"") != std::string::npos);
  BOOST_TEST(error_of(R"({"a":1} x)").find("src: bad JSON at byte 8:") == 0u);
  BOOST_TEST(error_of(R"({"a":1}{})").find("expected end of input") != std::string::npos);
  BOOST_TEST(error_of(R"({"a":)").find("src: bad JSON at byte 5:") == 0u);
  BOOST_TEST(error_of("").find("src: bad JSON at byte 0:") == 0u);
  BOOST_TEST(error_of("{\"a\xff\":1}").find("src: bad JSON at byte 3:") == 0u);       // invalid UTF-8
  BOOST_TEST(error_of("{\"a\xc0\xaf\":1}").find("src: bad JSON") == 0u);             // overlong
  BOOST_TEST(error_of("{\"\xed\xa0\x80\":1}").find("src: bad JSON") == 0u);          // UTF-8 surrogate
  BOOST_TEST(error_of(R"(["\ud800"])").find("src: bad JSON") == 0u);                 // lone high surrogate
  BOOST_TEST(error_of(R"(["\udc00"])").find("src: bad JSON") == 0u);                 // lone low surrogate
  BOOST_TEST(error_of("[\"a\tb\"]").find("src: bad JSON") == 0u);                    // control character
  BOOST_TEST(error_of(R"(["\q"])").find("src: bad JSON") == 0u);                     // unknown escape
  BOOST_TEST(error_of("[01]").find("src: bad JSON") == 0u);
  BOOST_TEST(error_of("[1e999]").find("src: bad JSON") == 0u);                       // overflows a double
  BOOST_TEST(error_of("[NaN]").find("src: bad JSON") == 0u);
  BOOST_TEST(error_of("// c\n{}").find("src: bad JSON") == 0u);                      // no comments
}

BOOST_AUTO_TEST_CASE(nesting_is_bounded) {
  const auto nested = [](int n) { return std::string(size_t(n), '[') + std::string(size_t(n), ']'); };
  BOOST_TEST(error_of(nested(16)) == "(accepted)");
  BOOST_TEST(error_of(nested(17)) == "src: bad JSON at byte 16: nested too deeply");
  BOOST_TEST(error_of(nested(1'000'000)).find("nested too deeply") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(writing_escapes_and_refuses_invalid_utf8) {
  std::string out;
  json_string(out, std::string("a\"\\\n\x01/\xc3\xa9", 8));
  BOOST_TEST(out == R"("a\"\\\n\u0001/)" "\xc3\xa9\"");
  BOOST_TEST(valid_utf8("\xc3\xa9\xf0\x9f\x98\x80"));
  BOOST_TEST(!valid_utf8("\xff"));
  BOOST_TEST(!valid_utf8("\xc3"));          // cut short
  BOOST_TEST(!valid_utf8("\xed\xa0\x80"));  // a surrogate
  BOOST_TEST(!valid_utf8("\xc0\xaf"));      // overlong
  BOOST_CHECK_THROW(json_string(out, "\xff"), Error);

  const std::string row = ObjectWriter()
                              .add("step", int64_t(3))
                              .add("loss", 0.30000001192092896)
                              .add("nan", std::nan(""))
                              .add("inf", -std::numeric_limits<double>::infinity())
                              .add("name", "r\"1")
                              .add_raw("cursor", "[1,2]")
                              .str();
  BOOST_TEST(row == R"({"step":3,"loss":0.300000012,"nan":null,"inf":null,"name":"r\"1","cursor":[1,2]})");
  const Json back = parse(row, "row");  // what we write, we read
  BOOST_TEST(back.members.size() == 6u);
}

BOOST_AUTO_TEST_SUITE_END()
