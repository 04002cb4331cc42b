// The layers test executable. Besides the other files' test cases it registers one case
// per gradient check defined under layers/ (suite "layer_gradcheck"), at run time, after
// every static MNEMO_GRADCHECK registration has happened.
#ifdef MNEMO_BOOST_TEST_HEADER_ONLY
#include <boost/test/included/unit_test.hpp>
#else
#include <boost/test/unit_test.hpp>
#endif
#include <string>

#include "autograd/gradcheck/gradcheck.h"

namespace ut = boost::unit_test;

static bool init_layer_tests() {
  ut::framework::master_test_suite().p_name.value = "layers";
  ut::test_suite* suite = BOOST_TEST_SUITE("layer_gradcheck");
  for (const mnemo::gradcheck::Check& c : mnemo::gradcheck::all()) {
    if (std::string(c.file).find("layers/") == std::string::npos) continue;  // ops are checked in test_autograd
    const std::string name = c.name;
    suite->add(ut::make_test_case(
        [name] {
          const auto r = mnemo::gradcheck::run(*mnemo::gradcheck::find(name));
          BOOST_TEST_INFO(r.summary());
          BOOST_TEST(r.ok);
        },
        name, c.file, size_t(c.line)));
  }
  ut::framework::master_test_suite().add(suite);
  return true;
}

int main(int argc, char* argv[]) { return ut::unit_test_main(&init_layer_tests, argc, argv); }
