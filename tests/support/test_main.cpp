// main() for the per-architecture test executables (tests/architectures/<arch>/).
#ifdef MNEMO_BOOST_TEST_HEADER_ONLY
#include <boost/test/included/unit_test.hpp>
#else
#include <boost/test/unit_test.hpp>
#endif

static bool init_tests() { return true; }

int main(int argc, char* argv[]) { return boost::unit_test::unit_test_main(&init_tests, argc, argv); }
