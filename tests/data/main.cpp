#define BOOST_TEST_MODULE data
#ifdef MNEMO_BOOST_TEST_HEADER_ONLY
#include <boost/test/included/unit_test.hpp>
#else
#include <boost/test/unit_test.hpp>
#endif
