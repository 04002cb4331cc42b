// The autograd test executable. Besides the BOOST_AUTO_TEST_CASEs of the other files, it
// registers one test case per gradient check in the registry (suite "gradcheck") at run
// time, once every static MNEMO_GRADCHECK registration has happened.
#ifdef MNEMO_BOOST_TEST_HEADER_ONLY
#include <boost/test/included/unit_test.hpp>  // hosts without libboost-test (never on Debian)
#else
#include <boost/test/unit_test.hpp>
#endif

namespace mnemo::test {
void register_gradcheck_suite();
}

static bool init_autograd_tests() {
  boost::unit_test::framework::master_test_suite().p_name.value = "autograd";
  mnemo::test::register_gradcheck_suite();
  return true;
}

int main(int argc, char* argv[]) { return boost::unit_test::unit_test_main(&init_autograd_tests, argc, argv); }
