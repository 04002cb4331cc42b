#define BOOST_TEST_MODULE kernels
#ifdef MNEMO_BOOST_TEST_HEADER_ONLY
#include <boost/test/included/unit_test.hpp>  // hosts without libboost-test (never on Debian)
#else
#include <boost/test/unit_test.hpp>
#endif
