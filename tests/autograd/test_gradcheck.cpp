// The gradient-check registry as a data-driven suite ("gradcheck": one case per check),
// and proof that the checker can fail ("checker").
#include <boost/test/unit_test.hpp>
#include <set>

#include "autograd/apply.h"
#include "autograd/gradcheck/gradcheck.h"
#include "autograd/ops/tensor_math.h"

#include "tests/support/gradcheck_suite.h"

namespace mnemo::test {

// Called from main.cpp's init function: the ops' checks (autograd/), one case each.
void register_gradcheck_suite() { register_gradcheck_suite("gradcheck", "autograd/"); }

}  // namespace mnemo::test

namespace {

using namespace mnemo;

// tanh with a backward that is off by a factor: the kind of bug the checker exists for.
struct PlantedTanh {
  const char* name = "planted_tanh";
  double factor;
  Tensor forward(Ctx& ctx, const Tensor& x) const {
    Tensor y = tm::unary(kernels::Unary::tanh, x);
    ctx.save("y", y);
    return y;
  }
  Grads backward(Ctx& ctx, const Tensor& dy) const {
    const Tensor one_minus_y2 = tm::unary(kernels::Unary::affine, tm::unary(kernels::Unary::square, ctx.saved("y")), -1, 1);
    return {tm::scale(tm::binary(kernels::Binary::mul, dy, one_minus_y2), factor)};
  }
};

// A backward that forgets the gradient of one input entirely.
struct PlantedMulMissingB {
  const char* name = "planted_mul";
  Tensor forward(Ctx& ctx, const Tensor& a, const Tensor& b) const {
    ctx.save("b", b);
    return tm::binary(kernels::Binary::mul, a, b);
  }
  Grads backward(Ctx& ctx, const Tensor& dy) const { return {tm::binary(kernels::Binary::mul, dy, ctx.saved("b")), Tensor{}}; }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(checker)

BOOST_AUTO_TEST_CASE(correct_backward_passes) {
  const gradcheck::Check c{"planted_tanh.ok", [](gradcheck::Sample& s) { return apply(PlantedTanh{"planted_tanh", 1.0}, s.input({3, 4})); }};
  BOOST_TEST(gradcheck::run(c).ok);
}

BOOST_AUTO_TEST_CASE(rejects_a_backward_off_by_one_percent) {
  const gradcheck::Check c{"planted_tanh.bad", [](gradcheck::Sample& s) { return apply(PlantedTanh{"planted_tanh", 1.01}, s.input({3, 4})); }};
  const gradcheck::Result r = gradcheck::run(c);
  BOOST_TEST(!r.ok);
  BOOST_REQUIRE_EQUAL(r.leaves.size(), 1u);
  BOOST_TEST(!r.leaves[0].ok);
  BOOST_TEST(r.leaves[0].max_rel_err > 5e-3);
  BOOST_TEST(r.summary().find("FAILED") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(rejects_a_missing_input_gradient) {
  const gradcheck::Check c{"planted_mul", [](gradcheck::Sample& s) {
                             return apply(PlantedMulMissingB{}, s.input({2, 3}), s.input({2, 3}));
                           }};
  const gradcheck::Result r = gradcheck::run(c);
  BOOST_TEST(!r.ok);
  BOOST_REQUIRE_EQUAL(r.leaves.size(), 2u);
  BOOST_TEST(r.leaves[0].ok != r.leaves[1].ok);  // exactly the forgotten input fails
}

BOOST_AUTO_TEST_CASE(reports_a_builder_that_throws) {
  const gradcheck::Check c{"throws", [](gradcheck::Sample& s) { return matmul(s.input({2, 3}), s.input({2, 3})); }};
  const gradcheck::Result r = gradcheck::run(c);
  BOOST_TEST(!r.ok);
  BOOST_TEST(r.error.find("[matmul]") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(registry_is_large_and_names_are_unique) {
  const auto names = gradcheck::names();
  BOOST_TEST(names.size() >= 45u);
  const std::set<std::string> unique(names.begin(), names.end());
  BOOST_TEST(unique.size() == names.size());
}

BOOST_AUTO_TEST_SUITE_END()
