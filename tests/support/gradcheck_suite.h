// Registers one Boost.Test case per gradient check whose source file path contains
// `folder` (e.g. "layers/"), as a suite named `suite`. Call it from a test executable's
// init function: by then every static MNEMO_GRADCHECK registration has happened.
#pragma once

#include <boost/test/unit_test.hpp>
#include <string>

#include "autograd/gradcheck/gradcheck.h"

namespace mnemo::test {

inline void register_gradcheck_suite(const std::string& suite_name, const std::string& folder) {
  namespace ut = boost::unit_test;
  ut::test_suite* suite = BOOST_TEST_SUITE(suite_name);
  for (const gradcheck::Check& c : gradcheck::all()) {
    if (std::string(c.file).find(folder) == std::string::npos) continue;
    const std::string name = c.name;
    suite->add(ut::make_test_case(
        [name] {
          const gradcheck::Result r = gradcheck::run(*gradcheck::find(name));
          BOOST_TEST_INFO(r.summary());
          BOOST_TEST(r.ok);
        },
        name, c.file, size_t(c.line)));
  }
  ut::framework::master_test_suite().add(suite);
}

}  // namespace mnemo::test
