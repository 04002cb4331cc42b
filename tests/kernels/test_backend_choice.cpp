// Which float kernel a CPU tensor runs (kernels.h, Kernel::cpu_f32) and the MNEMO_BACKEND
// switch. The two variable suites run under meson with the variable set (tests/meson.build);
// elsewhere their preconditions skip them.
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels/kernels.h"

namespace kn = mnemo::kernels;
namespace tt = boost::test_tools;
namespace ut = boost::unit_test;

namespace {

using kn::Backend;

std::string variable() {
  const char* v = std::getenv("MNEMO_BACKEND");
  return v ? v : "";
}

auto variable_is(const std::string& want) {
  return [want](ut::test_unit_id) {
    tt::assertion_result r(variable() == want);
    r.message() << "MNEMO_BACKEND is '" << variable() << "', this case needs '" << want << "'";
    return r;
  };
}

}  // namespace

BOOST_AUTO_TEST_SUITE(backend_choice)

BOOST_AUTO_TEST_CASE(fastest_unless_forced, *ut::precondition(variable_is(""))) {
  kn::init();
  const kn::Kernel<kn::GemmSig>& g = kn::gemm;  // filled by every CPU backend that is built
  const kn::Kernel<kn::SoftmaxForwardSig>& s = kn::softmax_forward;  // reference and cpu only
  BOOST_TEST(!kn::force_reference());
  BOOST_TEST(kn::prefer_onednn() == kn::onednn_built());
  BOOST_TEST(g.cpu_f32() == g.get(kn::onednn_built() ? Backend::onednn : Backend::cpu));
  BOOST_TEST(s.cpu_f32() == s.get(Backend::cpu));
  kn::set_prefer_onednn(false);
  BOOST_TEST(g.cpu_f32() == g.get(Backend::cpu));
  kn::set_force_reference(true);
  BOOST_TEST(g.cpu_f32() == g.get(Backend::reference));
  BOOST_TEST(s.cpu_f32() == s.get(Backend::reference));
  for (const kn::KernelSlot* k : kn::all_kernels()) BOOST_TEST(k->filled[int(Backend::reference)], k->name);
  kn::set_force_reference(false);
  kn::set_prefer_onednn(true);
  BOOST_TEST(g.cpu_f32() == g.get(kn::onednn_built() ? Backend::onednn : Backend::cpu));
  BOOST_TEST(g.get(Backend::reference) != g.get(Backend::cpu));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(backend_variable)

BOOST_AUTO_TEST_CASE(reference_forces_the_reference, *ut::precondition(variable_is("reference"))) {
  kn::init();
  BOOST_TEST(kn::force_reference());
  BOOST_TEST(kn::gemm.cpu_f32() == kn::gemm.get(Backend::reference));
  kn::set_force_reference(false);  // a later setter wins over the variable
  BOOST_TEST(kn::gemm.cpu_f32() != kn::gemm.get(Backend::reference));
}

BOOST_AUTO_TEST_CASE(cpu_turns_onednn_off, *ut::precondition(variable_is("cpu"))) {
  kn::init();
  BOOST_TEST(!kn::force_reference());
  BOOST_TEST(!kn::prefer_onednn());
  BOOST_TEST(kn::gemm.cpu_f32() == kn::gemm.get(Backend::cpu));
}

BOOST_AUTO_TEST_CASE(unknown_value_is_an_error, *ut::precondition(variable_is("fastest"))) {
  auto names_the_choices = [](const std::invalid_argument& e) {
    const std::string m = e.what();
    return m.find("MNEMO_BACKEND='fastest'") != std::string::npos &&
           m.find("reference, cpu or auto") != std::string::npos;
  };
  BOOST_CHECK_EXCEPTION(kn::init(), std::invalid_argument, names_the_choices);
  BOOST_CHECK_EXCEPTION(kn::init(), std::invalid_argument, names_the_choices);  // every time, not once
}

BOOST_AUTO_TEST_SUITE_END()
