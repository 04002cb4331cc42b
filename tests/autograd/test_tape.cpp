// Tape semantics: accumulation, several roots with seeds, leaves, no-record mode,
// gradient boundaries, parameter gradients across tapes, and the debugging aids.
#include <boost/test/unit_test.hpp>
#include <cmath>

#include "autograd/ops/ops.h"

using namespace mnemo;

namespace {

Tensor f64(const Shape& s, std::initializer_list<double> v) { return Tensor::from(s, v, DType::f64); }

void check_close(const Tensor& t, const std::vector<double>& want, double tol = 1e-12) {
  BOOST_REQUIRE(t.defined());
  const auto got = t.to_vector();
  BOOST_REQUIRE_EQUAL(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    BOOST_TEST_CONTEXT("element " << i) { BOOST_TEST(std::abs(got[i] - want[i]) <= tol); }
  }
}

auto has(std::string part) {
  return [part](const Error& e) { return std::string(e.what()).find(part) != std::string::npos; };
}

}  // namespace

BOOST_AUTO_TEST_SUITE(tape)

BOOST_AUTO_TEST_CASE(a_var_used_twice_accumulates) {
  Tape tape;
  Var x = tape.input(f64({3}, {1, -2, 0.5}));
  tape.backward(sum(x * x + x));  // d/dx = 2x + 1
  check_close(tape.grad(x), {3, -3, 2});
}

BOOST_AUTO_TEST_CASE(several_roots_with_explicit_seeds) {
  Tape tape;
  Var x = tape.input(f64({2}, {1, 2}));
  Var a = x * 3.0;       // da/dx = 3
  Var b = square(x);     // db/dx = 2x
  const Var roots[] = {a, b};
  const Tensor seeds[] = {f64({2}, {1, 10}), f64({2}, {0.5, -1})};
  tape.backward(roots, seeds);
  // 3 * seed_a + 2x * seed_b
  check_close(tape.grad(x), {3 * 1 + 2 * 1 * 0.5, 3 * 10 + 2 * 2 * -1});
}

BOOST_AUTO_TEST_CASE(input_leaf_gradient_through_a_chain) {
  Tape tape;
  Var m = tape.input(f64({2, 2}, {1, 2, 3, 4}));  // the incoming memory of replay backprop
  Var w = tape.constant(f64({2, 2}, {0.5, 0, 0, 2}));
  Var out = matmul(m, w);                           // seeded with the next segment's gradient
  const Var roots[] = {out};
  const Tensor seeds[] = {f64({2, 2}, {1, 1, 1, 1})};
  tape.backward(roots, seeds);
  check_close(tape.grad(m), {0.5, 2, 0.5, 2});  // dm = seed w^T
}

BOOST_AUTO_TEST_CASE(no_record_mode_records_nothing) {
  Tape tape;
  Param w(f64({2}, {1, 2}));
  Var x = tape.input(f64({2}, {3, 4}));
  const int64_t before = tape.size();
  {
    Tape::NoRecord guard(tape);
    Var y = exp(x * tape.param(w)) + 1.0;
    BOOST_TEST(!y.requires_grad());
    BOOST_TEST(std::abs(y.value().at({0}) - (std::exp(3.0) + 1)) < 1e-9);
    BOOST_TEST(tape.size() == before);
  }
  BOOST_TEST(tape.recording());
  Var z = x * tape.param(w);
  BOOST_TEST(z.requires_grad());
  BOOST_TEST(tape.size() > before);
}

BOOST_AUTO_TEST_CASE(stop_gradient_cuts) {
  Tape tape;
  Var x = tape.input(f64({2}, {1, 2}));
  Var y = x * stop_gradient(x);  // d/dx = stop(x) only
  BOOST_TEST(stop_gradient(x).value().same_storage(x.value()));
  tape.backward(sum(y));
  check_close(tape.grad(x), {1, 2});
}

BOOST_AUTO_TEST_CASE(scale_gradient_scales_only_the_gradient) {
  Tape tape;
  Var x = tape.input(f64({3}, {1, 2, 3}));
  Var y = scale_gradient(x, 0.1);
  check_close(y.value(), {1, 2, 3});
  // CogView's form: same value, gradient times f
  Var z = 0.25 * x + 0.75 * stop_gradient(x);
  check_close(z.value(), {1, 2, 3});
  tape.backward(sum(y * 2.0) + sum(z));
  check_close(tape.grad(x), {0.2 + 0.25, 0.2 + 0.25, 0.2 + 0.25});
}

BOOST_AUTO_TEST_CASE(params_accumulate_across_tapes_until_zero_grad) {
  Param w(f64({2}, {1, -1}));
  for (int i = 0; i < 2; ++i) {
    Tape tape;
    Var p = tape.param(w);
    BOOST_TEST(tape.param(w).id() == p.id());  // one leaf per param per tape
    tape.backward(sum(p * tape.constant(f64({2}, {3, 4}))));
  }
  check_close(w.grad, {6, 8});
  w.zero_grad();
  check_close(w.grad, {0, 0});
}

BOOST_AUTO_TEST_CASE(frozen_params_get_no_gradient) {
  Param w(f64({2}, {1, 2}));
  Tape tape;
  Var x = tape.input(f64({2}, {3, 4}));
  tape.backward(sum(x * tape.param(w, ParamUse::frozen)));
  BOOST_TEST(!w.grad.defined());
  check_close(tape.grad(x), {1, 2});
}

BOOST_AUTO_TEST_CASE(a_root_that_needs_no_gradient_is_skipped) {
  Tape tape;
  Var c = tape.constant(f64({}, {2}));
  Var x = tape.input(f64({}, {1}));
  const Var roots[] = {c * 3.0, x * 5.0};
  const Tensor seeds[] = {f64({}, {1}), f64({}, {1})};
  tape.backward(roots, seeds);
  check_close(tape.grad(x), {5});
}

BOOST_AUTO_TEST_CASE(unreached_input_has_no_gradient) {
  Tape tape;
  Var x = tape.input(f64({1}, {1}));
  Var unused = tape.input(f64({1}, {1}));
  tape.backward(sum(x));
  BOOST_TEST(!tape.grad(unused).defined());
}

BOOST_AUTO_TEST_CASE(backward_runs_once) {
  Tape tape;
  Var x = tape.input(f64({1}, {1}));
  Var loss = sum(x * 2.0);
  tape.backward(loss);
  BOOST_CHECK_EXCEPTION(tape.backward(loss), Error, has("already ran backward"));
}

BOOST_AUTO_TEST_CASE(seed_shape_is_checked) {
  Tape tape;
  Var x = tape.input(f64({2}, {1, 2}));
  const Var roots[] = {x * 2.0};
  const Tensor seeds[] = {f64({3}, {1, 1, 1})};
  BOOST_CHECK_EXCEPTION(tape.backward(roots, seeds), Error, has("seed 0 is (3,)"));
}

BOOST_AUTO_TEST_CASE(check_finite_names_the_first_bad_op) {
  Tape tape;
  tape.set_check_finite(true);
  Var x = tape.input(f64({3}, {1, -1, 2}));
  Var y = exp(x);  // finite: fine
  BOOST_CHECK_EXCEPTION(log(x - 1.5), Error, has("op 'log'"));
  BOOST_TEST(y.value().numel() == 3);
}

BOOST_AUTO_TEST_CASE(check_finite_names_a_backward_producing_nan) {
  Tape tape;
  tape.set_check_finite(true);
  Var x = tape.input(f64({2}, {0, 4}));
  Var y = sqrt(x);  // forward finite, d sqrt / dx at 0 is inf
  BOOST_CHECK_EXCEPTION(tape.backward(sum(y)), Error, has("backward gradient of op 'sqrt'"));
}

BOOST_AUTO_TEST_CASE(dump_lists_nodes_in_order) {
  Tape tape;
  Param w(f64({2, 3}, {1, 2, 3, 4, 5, 6}));
  Var x = tape.input(f64({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8}));
  Var y = relu(matmul(x, tape.param(w)));
  const std::string d = tape.dump();
  BOOST_TEST(d.find("0 input (4, 2) f64") != std::string::npos);
  BOOST_TEST(d.find("1 param (2, 3) f64") != std::string::npos);
  BOOST_TEST(d.find("2 matmul (4, 3) f64 <- 0 1") != std::string::npos);
  BOOST_TEST(d.find("3 relu (4, 3) f64 <- 2") != std::string::npos);
  BOOST_TEST(y.shape() == Shape({4, 3}));
}

BOOST_AUTO_TEST_CASE(ops_on_constants_record_nothing) {
  Tape tape;
  Var c = tape.constant(f64({2}, {1, 2}));
  Var y = exp(c) * c;
  BOOST_TEST(tape.size() == 0);
  BOOST_TEST(!y.requires_grad());
}

BOOST_AUTO_TEST_SUITE_END()
