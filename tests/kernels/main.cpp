// main() for the kernel tests. A run whose selected test cases were all skipped (by a
// precondition: a backend that is not built, a CPU feature that is missing) exits 77, which
// meson reports as SKIP instead of counting it as a pass.
#ifdef MNEMO_BOOST_TEST_HEADER_ONLY
#include <boost/test/included/unit_test.hpp>  // hosts without libboost-test (never on Debian)
#else
#include <boost/test/unit_test.hpp>
#endif
#include <boost/test/tree/observer.hpp>
#include <cstdio>

namespace {

namespace ut = boost::unit_test;

struct CaseCounter : ut::test_observer {
  int started = 0, skipped = 0;
  void test_unit_start(const ut::test_unit& tu) override { started += tu.p_type == ut::TUT_CASE; }
  void test_unit_skipped(const ut::test_unit& tu, ut::const_string why) override {
    if (tu.p_type != ut::TUT_CASE) return;
    ++skipped;
    // Say why in meson's log (Boost prints it only at --log_level=test_suite); cases outside
    // --run_test are "disabled", which is no news.
    if (why != ut::const_string("disabled"))
      std::printf("SKIP %s: %.*s\n", tu.p_name->c_str(), int(why.size()), why.begin());
  }
};

CaseCounter g_cases;

bool init_tests() {
  ut::framework::master_test_suite().p_name.value = "kernels";
  ut::framework::register_observer(g_cases);
  return true;
}

}  // namespace

int main(int argc, char* argv[]) {
  const int rc = ut::unit_test_main(&init_tests, argc, argv);
  return rc == 0 && g_cases.started == 0 && g_cases.skipped > 0 ? 77 : rc;
}
