// The layers test executable. Besides the other files' test cases it runs every gradient
// check defined under layers/ (suite "layer_gradcheck").
#ifdef MNEMO_BOOST_TEST_HEADER_ONLY
#include <boost/test/included/unit_test.hpp>
#else
#include <boost/test/unit_test.hpp>
#endif

#include "tests/support/gradcheck_suite.h"

static bool init_tests() {
  boost::unit_test::framework::master_test_suite().p_name.value = "layers";
  mnemo::test::register_gradcheck_suite("layer_gradcheck", "layers/");
  return true;
}

int main(int argc, char* argv[]) { return boost::unit_test::unit_test_main(&init_tests, argc, argv); }
