// Each op's forward (and a few cheap backwards) against values computed by hand or by a
// short independent loop in plain C++ -- never by another mnemo op or kernel.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <iomanip>
#include <limits>
#include <numbers>
#include <numeric>

#include "autograd/ops/ops.h"

using namespace mnemo;

namespace {

constexpr double kTol = 1e-12;
constexpr double kTol32 = 1e-6;
const double kInf = std::numeric_limits<double>::infinity();

// Every element within tol (relative above 1, absolute below); infinities must match exactly.
void check_close(const Tensor& t, std::vector<double> expected, double tol) {
  BOOST_TEST_REQUIRE(t.numel() == int64_t(expected.size()));
  const std::vector<double> got = t.to_vector();
  for (size_t i = 0; i < expected.size(); ++i) {
    BOOST_TEST_CONTEXT("index " << i << std::setprecision(17) << ": got " << got[i] << ", expected " << expected[i]) {
      if (std::isinf(expected[i])) BOOST_TEST(got[i] == expected[i]);
      else BOOST_TEST(std::abs(got[i] - expected[i]) <= tol * std::max(1.0, std::abs(expected[i])));
    }
  }
}

void check_var(Var v, const Shape& shape, std::vector<double> expected, double tol = kTol) {
  BOOST_TEST(v.shape() == shape);
  check_close(v.value(), std::move(expected), tol);
}

Tensor f64(const Shape& s, std::vector<double> v) { return Tensor::from(s, v, DType::f64); }
Tensor u8(const Shape& s, std::vector<double> v) { return Tensor::from(s, v, DType::u8); }
Var cst(Tape& t, const Shape& s, std::vector<double> v) { return t.constant(f64(s, std::move(v))); }

// v[i] = a + b * i: distinct, non-trivial values.
std::vector<double> ramp(int64_t n, double a, double b) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = a + b * double(i);
  return v;
}

// The gradient of f(x) with respect to an f64 input x, on a fresh tape.
template <class F>
Tensor grad_of(const Shape& s, std::vector<double> v, F f) {
  Tape t;
  Var x = t.input(f64(s, std::move(v)));
  t.backward(f(x));
  return t.grad(x);
}

// Plain batched C[b] = op(A[b]) op(B[b]) read from the stored layouts: A is (M, K), or (K, M)
// when ta; B is (K, N), or (N, K) when tb. A shared operand (batch stride 0) has sa / sb set.
std::vector<double> ref_matmul(const std::vector<double>& A, const std::vector<double>& B, int64_t batch, int64_t M,
                               int64_t K, int64_t N, bool ta = false, bool tb = false, bool sa = false,
                               bool sb = false) {
  std::vector<double> C;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k)
          s += A[size_t((sa ? 0 : b) * M * K + (ta ? k * M + i : i * K + k))] *
               B[size_t((sb ? 0 : b) * K * N + (tb ? j * K + k : k * N + j))];
        C.push_back(s);
      }
  return C;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ops_forward)

BOOST_AUTO_TEST_CASE(binary_broadcasting) {
  Tape tape;
  Var a = cst(tape, {2, 3}, {1, 2, 3, 4, 5, 6}), b = cst(tape, {3}, {10, 20, 30});
  check_var(add(a, b), {2, 3}, {11, 22, 33, 14, 25, 36});
  check_var(sub(a, b), {2, 3}, {-9, -18, -27, -6, -15, -24});
  check_var(sub(b, a), {2, 3}, {9, 18, 27, 6, 15, 24});
  Var c = cst(tape, {2, 1}, {2, 3}), d = cst(tape, {1, 3}, {1, 2, 4});
  check_var(mul(c, d), {2, 3}, {2, 4, 8, 3, 6, 12});
  check_var(div(c, d), {2, 3}, {2, 1, 0.5, 3, 1.5, 0.75});
  check_var(div(a, b), {2, 3}, {0.1, 0.1, 0.1, 0.4, 0.25, 0.2});
  // (2, 1, 2) + (3, 1) -> (2, 3, 2): out[i, j, k] = e[i, k] + f[j]
  const std::vector<double> ev{1, 2, 3, 4}, fv{10, 20, 30};
  std::vector<double> want;
  for (int n = 0; n < 12; ++n) want.push_back(ev[size_t(n / 6 * 2 + n % 2)] + fv[size_t(n / 2 % 3)]);
  check_var(add(cst(tape, {2, 1, 2}, ev), cst(tape, {3, 1}, fv)), {2, 3, 2}, want);
  check_var(mul(a, tape.constant(Tensor::scalar(-2, DType::f64))), {2, 3}, {-2, -4, -6, -8, -10, -12});  // a scalar
  Var a32 = tape.constant(Tensor::from({2, 3}, {0.1, 0.2, 0.3, 0.4, 0.5, 0.6}));
  Var b32 = tape.constant(Tensor::from({3}, {1.5, -2.5, 3.25}));
  BOOST_TEST((a32 * b32).dtype() == DType::f32);
  check_var(a32 * b32, {2, 3}, {0.15, -0.5, 0.975, 0.6, -1.25, 1.95}, kTol32);
  check_var(a32 + b32, {2, 3}, {1.6, -2.3, 3.55, 1.9, -2.0, 3.85}, kTol32);
}

BOOST_AUTO_TEST_CASE(scalar_ops_and_overloads) {
  Tape tape;
  Var x = cst(tape, {4}, {-2, -0.5, 0.5, 3});
  check_var(affine(x, 2, 1), {4}, {-3, 0, 2, 7});
  for (Var y : {neg(x), -x}) check_var(y, {4}, {2, 0.5, -0.5, -3});
  for (Var y : {rdiv(2, x), 2 / x}) check_var(y, {4}, {-1, -4, 4, 2.0 / 3.0});
  check_var(pow(cst(tape, {3}, {0.25, 1, 4}), 1.5), {3}, {0.125, 1, 8});
  check_var(pow(x, 2), {4}, {4, 0.25, 0.25, 9});
  for (Var y : {x + 1.5, 1.5 + x}) check_var(y, {4}, {-0.5, 1, 2, 4.5});
  check_var(x - 1, {4}, {-3, -1.5, -0.5, 2});
  check_var(1 - x, {4}, {3, 1.5, 0.5, -2});
  for (Var y : {x * 3, 3 * x}) check_var(y, {4}, {-6, -1.5, 1.5, 9});
  check_var(x / 4, {4}, {-0.5, -0.125, 0.125, 0.75});
  Var y = cst(tape, {4}, {1, 2, 4, 8});
  check_var(x + y, {4}, {-1, 1.5, 4.5, 11});
  check_var(x - y, {4}, {-3, -2.5, -3.5, -5});
  check_var(x * y, {4}, {-2, -1, 2, 24});
  check_var(x / y, {4}, {-2, -0.25, 0.125, 0.375});
}

BOOST_AUTO_TEST_CASE(unary_maps) {
  Tape tape;
  const std::vector<double> xs{-3, -1, -0.5, 0, 0.5, 1, 2.5};
  const Shape s{7};
  Var x = cst(tape, s, xs);
  auto map = [&](auto f) {
    std::vector<double> v(xs.size());
    std::transform(xs.begin(), xs.end(), v.begin(), f);
    return v;
  };
  auto sig = [](double t) { return 1.0 / (1.0 + std::exp(-t)); };
  check_var(exp(x), s, map([](double t) { return std::exp(t); }));
  check_var(tanh(x), s, map([](double t) { return std::tanh(t); }));
  check_var(sigmoid(x), s, map(sig));
  check_var(relu(x), s, {0, 0, 0, 0, 0.5, 1, 2.5});
  check_var(silu(x), s, map([&](double t) { return t * sig(t); }));
  check_var(softplus(x), s, map([](double t) { return std::log(1.0 + std::exp(t)); }));
  check_var(square(x), s, {9, 1, 0.25, 0, 0.25, 1, 6.25});
  check_var(abs(x), s, {3, 1, 0.5, 0, 0.5, 1, 2.5});
  check_var(gelu(x), s, map([](double t) { return 0.5 * t * (1 + std::erf(t / std::sqrt(2.0))); }));
  check_var(gelu_tanh(x), s, map([](double t) {
              return 0.5 * t * (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (t + 0.044715 * t * t * t)));
            }));
  Var p = cst(tape, {4}, {0.25, 1, 4, 9});
  check_var(log(p), {4}, {std::log(0.25), 0, std::log(4.0), std::log(9.0)});
  check_var(sqrt(p), {4}, {0.5, 1, 2, 3});
  check_var(rsqrt(p), {4}, {2, 1, 0.5, 1.0 / 3.0});
  // reference constants
  check_var(gelu(cst(tape, {3}, {1, -0.5, 0})), {3}, {0.8413447460685429, -0.15426876936299344, 0});
  check_var(gelu_tanh(cst(tape, {2}, {1, 0})), {2}, {0.8411919906082768, 0});
  // softplus stays finite and exact for large |x|; so does sigmoid
  const std::vector<double> sp = softplus(cst(tape, {4}, {50, -50, 800, -800})).value().to_vector();
  BOOST_TEST(sp[0] == 50.0);
  BOOST_TEST(std::abs(sp[1] - 1.9287498479639178e-22) <= 1e-12 * 1.9287498479639178e-22);
  BOOST_TEST(sp[2] == 800.0);
  BOOST_TEST((std::isfinite(sp[3]) && sp[3] >= 0.0 && sp[3] < 1e-300));
  BOOST_TEST(sigmoid(cst(tape, {2}, {-800, 800})).value().to_vector() == std::vector<double>({0.0, 1.0}),
             boost::test_tools::per_element());
  Var x32 = tape.constant(Tensor::from({3}, {-1, 0.5, 2}));
  check_var(tanh(x32), {3}, {std::tanh(-1.0), std::tanh(0.5), std::tanh(2.0)}, kTol32);
  check_var(gelu(x32), {3}, {-0.15865525393145707, 0.34573123063700656, 1.9544997361036416}, kTol32);
  check_var(sigmoid(x32), {3}, {sig(-1), sig(0.5), sig(2)}, kTol32);
}

BOOST_AUTO_TEST_CASE(reductions) {
  Tape tape;
  Var x = cst(tape, {2, 3}, {1, -2, 3, 4, 5, -6});
  check_var(sum(x, 0), {3}, {5, 3, -3});
  check_var(sum(x, 1), {2}, {2, 3});
  check_var(sum(x, -1, true), {2, 1}, {2, 3});
  check_var(mean(x, 0, true), {1, 3}, {2.5, 1.5, -1.5});
  check_var(mean(x, 1), {2}, {2.0 / 3.0, 1});
  check_var(max(x, 0), {3}, {4, 5, 3});
  check_var(max(x, 1, true), {2, 1}, {3, 5});
  check_var(sum(x), {}, {5});
  check_var(mean(x), {}, {5.0 / 6.0});
  // middle axis of (2, 3, 4) by a loop; max of v * (1, -1, 1) along it
  const std::vector<double> v = ramp(24, -3, 0.75);
  Var y = cst(tape, {2, 3, 4}, v);
  std::vector<double> s1(8, 0.0), m1(8), mx1(8, -kInf);
  for (size_t i = 0; i < 8; ++i)
    for (size_t j = 0; j < 3; ++j) {
      const double e = v[i / 4 * 12 + j * 4 + i % 4];
      s1[i] += e;
      m1[i] = s1[i] / 3;
      mx1[i] = std::max(mx1[i], j == 1 ? -e : e);
    }
  check_var(sum(y, 1), {2, 4}, s1);
  check_var(mean(y, 1, true), {2, 1, 4}, m1);
  check_var(max(y * cst(tape, {1, 3, 1}, {1, -1, 1}), 1), {2, 4}, mx1);
  check_var(mean(tape.constant(Tensor::from({2, 2}, {0.1, 0.2, 0.3, 0.4})), 1), {2}, {0.15, 0.35}, kTol32);
}

BOOST_AUTO_TEST_CASE(matmul_2d_and_transposes) {
  Tape tape;
  const std::vector<double> C{58, 64, 139, 154};  // [[1,2,3],[4,5,6]] x [[7,8],[9,10],[11,12]]
  Var a = cst(tape, {2, 3}, {1, 2, 3, 4, 5, 6}), at = cst(tape, {3, 2}, {1, 4, 2, 5, 3, 6});
  Var b = cst(tape, {3, 2}, {7, 8, 9, 10, 11, 12}), bt = cst(tape, {2, 3}, {7, 9, 11, 8, 10, 12});
  check_var(matmul(a, b), {2, 2}, C);
  check_var(matmul(at, b, {.trans_a = true}), {2, 2}, C);
  check_var(matmul(a, bt, {.trans_b = true}), {2, 2}, C);
  check_var(matmul(at, bt, {.trans_a = true, .trans_b = true}), {2, 2}, C);
  Var a32 = tape.constant(Tensor::from({1, 2}, {0.5, -1.5}));
  Var b32 = tape.constant(Tensor::from({2, 2}, {0.1, 0.2, 0.3, 0.4}));
  check_var(matmul(a32, b32), {1, 2}, {-0.4, -0.5}, kTol32);
}

BOOST_AUTO_TEST_CASE(matmul_batched_and_shared) {
  Tape tape;
  const std::vector<double> A = ramp(24, -2, 0.25), B = ramp(16, 1.5, -0.3), B2 = ramp(8, 0.4, 0.35);
  const std::vector<double> A2 = ramp(12, 1, -0.2);
  // 3-D: (2, 3, 4) x (2, 4, 2), plain and with both transposes
  check_var(matmul(cst(tape, {2, 3, 4}, A), cst(tape, {2, 4, 2}, B)), {2, 3, 2}, ref_matmul(A, B, 2, 3, 4, 2));
  check_var(matmul(cst(tape, {2, 4, 3}, A), cst(tape, {2, 2, 4}, B), {.trans_a = true, .trans_b = true}), {2, 3, 2},
            ref_matmul(A, B, 2, 3, 4, 2, true, true));
  // 4-D: (2, 2, 2, 3) x (2, 2, 3, 2)^T
  check_var(matmul(cst(tape, {2, 2, 2, 3}, A), cst(tape, {2, 2, 2, 3}, ramp(24, -1, 0.2)), {.trans_b = true}),
            {2, 2, 2, 2}, ref_matmul(A, ramp(24, -1, 0.2), 4, 2, 3, 2, false, true));
  // shared 2-D b: (2, 3, 4) x (4, 2), plain, with trans_b and with trans_a
  check_var(matmul(cst(tape, {2, 3, 4}, A), cst(tape, {4, 2}, B2)), {2, 3, 2},
            ref_matmul(A, B2, 2, 3, 4, 2, false, false, false, true));
  check_var(matmul(cst(tape, {2, 3, 4}, A), cst(tape, {2, 4}, B2), {.trans_b = true}), {2, 3, 2},
            ref_matmul(A, B2, 2, 3, 4, 2, false, true, false, true));
  check_var(matmul(cst(tape, {2, 4, 3}, A), cst(tape, {4, 2}, B2), {.trans_a = true}), {2, 3, 2},
            ref_matmul(A, B2, 2, 3, 4, 2, true, false, false, true));
  // shared 2-D a: (3, 4) x (2, 4, 2), and with a 4-D b (2, 1, 4, 2)
  const std::vector<double> want = ref_matmul(A2, B, 2, 3, 4, 2, false, false, true, false);
  check_var(matmul(cst(tape, {3, 4}, A2), cst(tape, {2, 4, 2}, B)), {2, 3, 2}, want);
  check_var(matmul(cst(tape, {3, 4}, A2), cst(tape, {2, 1, 4, 2}, B)), {2, 1, 3, 2}, want);
  check_var(matmul(cst(tape, {4, 3}, A2), cst(tape, {2, 2, 4}, B), {.trans_a = true, .trans_b = true}), {2, 3, 2},
            ref_matmul(A2, B, 2, 3, 4, 2, true, true, true, false));
}

BOOST_AUTO_TEST_CASE(reshape_permute_broadcast) {
  Tape tape;
  const std::vector<double> v = ramp(24, 0, 1);
  Var x = cst(tape, {2, 3, 4}, v);
  Var r = reshape(x, {4, 6});
  BOOST_TEST(r.value().same_storage(x.value()));
  check_var(r, {4, 6}, v);
  // permute {2, 0, 1}: y[k, i, j] = x[i, j, k];  transpose(0, -1): z[k, j, i] = x[i, j, k]
  std::vector<double> p, t, bc;
  for (size_t n = 0; n < 24; ++n) {
    p.push_back(v[n / 3 % 2 * 12 + n % 3 * 4 + n / 6]);
    t.push_back(v[n % 2 * 12 + n / 2 % 3 * 4 + n / 6]);
    bc.push_back(10.0 * double(n / 4 % 3 + 1));
  }
  Var y = permute(x, {2, 0, 1});
  BOOST_TEST(!y.value().same_storage(x.value()));
  check_var(y, {4, 2, 3}, p);
  check_var(transpose(x, 0, -1), {4, 3, 2}, t);
  check_var(transpose(cst(tape, {2, 2}, {1, 2, 3, 4}), 0, 1), {2, 2}, {1, 3, 2, 4});
  // broadcast_to (3, 1) -> (2, 3, 4)
  check_var(broadcast_to(cst(tape, {3, 1}, {10, 20, 30}), {2, 3, 4}), {2, 3, 4}, bc);
}

BOOST_AUTO_TEST_CASE(concat_slice_split_pad) {
  Tape tape;
  Var a = cst(tape, {2, 1}, {1, 2}), b = cst(tape, {2, 2}, {3, 4, 5, 6});
  check_var(concat({a, b}, 1), {2, 3}, {1, 3, 4, 2, 5, 6});
  check_var(concat({b, cst(tape, {1, 2}, {7, 8})}, 0), {3, 2}, {3, 4, 5, 6, 7, 8});
  check_var(concat({a, b, a}, -1), {2, 4}, {1, 3, 4, 1, 2, 5, 6, 2});
  Var x = cst(tape, {2, 5}, ramp(10, 0, 1));
  check_var(slice(x, 1, 1, 3), {2, 3}, {1, 2, 3, 6, 7, 8});
  check_var(slice(x, 0, 1, 1), {1, 5}, {5, 6, 7, 8, 9});
  check_var(slice(x, -1, 4, 0), {2, 0}, {});
  const int64_t sizes[] = {2, 0, 3};
  std::vector<Var> parts = split(x, 1, sizes);
  BOOST_TEST_REQUIRE(parts.size() == 3u);
  check_var(parts[0], {2, 2}, {0, 1, 5, 6});
  check_var(parts[1], {2, 0}, {});
  check_var(parts[2], {2, 3}, {2, 3, 4, 7, 8, 9});
  check_var(pad(a, 0, 1, 2, -1.5), {5, 1}, {-1.5, 1, 2, -1.5, -1.5});
  check_var(pad(b, 1, 2, 1), {2, 5}, {0, 0, 3, 4, 0, 0, 0, 5, 6, 0});
}

BOOST_AUTO_TEST_CASE(index_select_and_embedding) {
  Tape tape;
  Var x = cst(tape, {3, 2}, {1, 2, 3, 4, 5, 6});
  check_var(index_select(x, 0, Tensor::from_ints({4}, {2, 0, 2, 1})), {4, 2}, {5, 6, 1, 2, 5, 6, 3, 4});
  check_var(index_select(x, 1, Tensor::from_ints({3}, {1, 1, 0})), {3, 3}, {2, 2, 1, 4, 4, 3, 6, 6, 5});
  check_var(index_select(x, 0, Tensor::from_ints({0}, {})), {0, 2}, {});
  check_var(index_select_or_zero(x, 0, Tensor::from_ints({3}, {-1, 2, -1})), {3, 2}, {0, 0, 5, 6, 0, 0});
  check_var(index_select_or_zero(x, 1, Tensor::from_ints({3}, {1, -1, 0})), {3, 3}, {2, 0, 1, 4, 0, 3, 6, 0, 5});
  BOOST_CHECK_THROW(index_select(x, 0, Tensor::from_ints({1}, {-1})), Error);  // a hole only where asked for
  BOOST_CHECK_THROW(index_select_or_zero(x, 0, Tensor::from_ints({1}, {-2})), Error);
  Var e = embedding(cst(tape, {4, 3}, ramp(12, 0, 0.5)), Tensor::from_ints({2, 2}, {3, 0, 1, 3}));
  check_var(e, {2, 2, 3}, {4.5, 5, 5.5, 0, 0.5, 1, 1.5, 2, 2.5, 4.5, 5, 5.5});
}

BOOST_AUTO_TEST_CASE(softmax_values) {
  Tape tape;
  Var x = cst(tape, {2, 3}, {1, 2, 3, 0, 0, 0});
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0), lz = std::log(z), l3 = std::log(3.0);
  check_var(softmax(x), {2, 3}, {std::exp(1.0) / z, std::exp(2.0) / z, std::exp(3.0) / z, 1 / 3.0, 1 / 3.0, 1 / 3.0});
  check_var(log_softmax(x), {2, 3}, {1 - lz, 2 - lz, 3 - lz, -l3, -l3, -l3});
  // rows sum to 1 on a larger input
  const std::vector<double> y = softmax(cst(tape, {5, 8}, ramp(40, -4, 0.37))).value().to_vector();
  for (auto r = y.begin(); r != y.end(); r += 8) BOOST_TEST(std::abs(std::accumulate(r, r + 8, 0.0) - 1.0) <= kTol);
  // stability: logits of +-1000
  Var big = cst(tape, {1, 3}, {1000, 999, -1000});
  const double e1 = std::exp(-1.0);
  check_var(softmax(big), {1, 3}, {1 / (1 + e1), e1 / (1 + e1), 0});
  check_var(log_softmax(big), {1, 3}, {-std::log1p(e1), -1 - std::log1p(e1), -2000 - std::log1p(e1)});
  check_var(softmax(tape.constant(Tensor::from({3}, {1, 2, 3}))), {3},
            {std::exp(1.0) / z, std::exp(2.0) / z, std::exp(3.0) / z}, kTol32);
}

BOOST_AUTO_TEST_CASE(softmax_masked) {
  Tape tape;
  Var x = cst(tape, {2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor m = u8({2, 3}, {1, 0, 1, 0, 0, 0});
  const double z = std::exp(1.0) + std::exp(3.0);
  const Tensor y = softmax(x, m).value();
  check_close(y, {std::exp(1.0) / z, 0, std::exp(3.0) / z, 0, 0, 0}, kTol);
  BOOST_TEST(y.to_vector() == std::vector<double>({y.at({0, 0}), 0, y.at({0, 2}), 0, 0, 0}),
             boost::test_tools::per_element());  // masked entries exactly 0, no NaN
  check_var(log_softmax(x, m), {2, 3}, {1 - std::log(z), -kInf, 3 - std::log(z), -kInf, -kInf, -kInf});
  // a (3,) mask broadcasts over rows
  const double z1 = std::exp(2.0) + std::exp(3.0), z2 = std::exp(5.0) + std::exp(6.0);
  check_var(softmax(x, u8({3}, {0, 1, 1})), {2, 3},
            {0, std::exp(2.0) / z1, std::exp(3.0) / z1, 0, std::exp(5.0) / z2, std::exp(6.0) / z2});
  // gradient: row 0 is s_i (w_i - sum_j s_j w_j) over allowed i; masked entries and the fully masked row get 0
  const double s0 = std::exp(1.0) / z, s2 = std::exp(3.0) / z, dot = s0 * 1 + s2 * 3;
  check_close(grad_of({2, 3}, {1, 2, 3, 4, 5, 6},
                      [&](Var v) { return sum(softmax(v, m) * cst(v.tape(), {2, 3}, {1, -2, 3, 0.5, 1, 2})); }),
              {s0 * (1 - dot), 0, s2 * (3 - dot), 0, 0, 0}, kTol);
}

BOOST_AUTO_TEST_CASE(cross_entropy_and_mse) {
  Tape tape;
  const std::vector<double> z{1, 2, 3, 0.5, -1, 2, 0, 0, 0};
  auto lse = [&](size_t r) { return std::log(std::exp(z[r * 3]) + std::exp(z[r * 3 + 1]) + std::exp(z[r * 3 + 2])); };
  const Tensor t = Tensor::from_ints({3}, {0, -100, 2});
  const double l0 = lse(0) - 1, l2 = lse(2) - 0;
  BOOST_TEST(std::abs(l0 - 2.40760596444438) <= 1e-13);  // log(e + e^2 + e^3) - 1
  Var x = cst(tape, {3, 3}, z);
  check_var(cross_entropy(x, t), {}, {(l0 + l2) / 2});
  check_var(cross_entropy(x, t, -100, Reduction::sum), {}, {l0 + l2});
  check_var(cross_entropy(x, t, -100, Reduction::none), {3}, {l0, 0, l2});
  check_var(cross_entropy(x, Tensor::from_ints({3}, {-100, -100, -100})), {}, {0});
  check_var(cross_entropy(x, Tensor::from_ints({3}, {1, 1, 1}), 1), {}, {0});  // a custom ignore_index
  // (2, 2, 3) logits with (2, 2) targets
  Var x3 = cst(tape, {2, 2, 3}, {1, 2, 3, 1, 2, 3, 0, 0, 0, 0, 0, 0});
  check_var(cross_entropy(x3, Tensor::from_ints({2, 2}, {0, 2, 1, 0}), -100, Reduction::none), {2, 2},
            {lse(0) - 1, lse(0) - 3, std::log(3.0), std::log(3.0)});
  // gradient of the mean: (softmax - onehot) / valid rows; the ignored row gets 0
  std::vector<double> want;
  for (size_t i = 0; i < 9; ++i)
    want.push_back(i / 3 == 1 ? 0.0 : (std::exp(z[i] - lse(i / 3)) - (i == 0 || i == 8 ? 1.0 : 0.0)) / 2);
  check_close(grad_of({3, 3}, z, [&](Var v) { return cross_entropy(v, t); }), want, kTol);
  check_var(cross_entropy(tape.constant(Tensor::from({1, 3}, {1, 2, 3})), Tensor::from_ints({1}, {0})), {},
            {2.40760596444438}, kTol32);
  // mse: (1 + 0 + 4 + 9) / 4
  check_var(mse_loss(cst(tape, {2, 2}, {1, 2, 3, 4}), cst(tape, {2, 2}, {0, 2, 5, 1})), {}, {3.5});
}

BOOST_AUTO_TEST_CASE(normalisations) {
  Tape tape;
  const int R = 3, D = 4;
  const std::vector<double> v{1, 2, 3, 4, -1, 0.5, 2, 7, 0.1, 0.1, 0.1, 0.1};
  const std::vector<double> g{0.5, 1, -1, 2}, bias{0.1, -0.2, 0.3, 0};
  std::vector<double> ln, ln_g, ln_gb, rms, rms_g, l2;
  for (size_t r = 0; r < R; ++r) {
    double mu = 0, var = 0, ms = 0;
    for (size_t c = 0; c < D; ++c) mu += v[r * D + c] / D, ms += v[r * D + c] * v[r * D + c] / D;
    for (size_t c = 0; c < D; ++c) var += (v[r * D + c] - mu) * (v[r * D + c] - mu) / D;
    for (size_t c = 0; c < D; ++c) {
      const double xh = (v[r * D + c] - mu) / std::sqrt(var + 1e-5), xr = v[r * D + c] / std::sqrt(ms + 1e-6);
      ln.push_back(xh);
      ln_g.push_back(xh * g[c]);
      ln_gb.push_back(xh * g[c] + bias[c]);
      rms.push_back(xr);
      rms_g.push_back(xr * g[c]);
      l2.push_back(v[r * D + c] / std::sqrt(ms * D));
    }
  }
  Var x = cst(tape, {R, D}, v), gv = cst(tape, {D}, g), bv = cst(tape, {D}, bias);
  check_var(layer_norm(x, gv, bv, 1e-5), {R, D}, ln_gb);
  check_var(layer_norm(x, gv, Var{}, 1e-5), {R, D}, ln_g);
  check_var(layer_norm(x, Var{}, Var{}), {R, D}, ln);
  check_var(rms_norm(x, gv, 1e-6), {R, D}, rms_g);
  check_var(rms_norm(x, Var{}, 1e-6), {R, D}, rms);
  check_var(l2_normalize(x), {R, D}, l2);
  // l2: a 3-4-5 row has unit norm; an all-zero row stays zero and finite
  check_var(l2_normalize(cst(tape, {2, 2}, {3, 4, 0, 0})), {2, 2}, {0.6, 0.8, 0, 0});
  // a constant row normalises to 0 (variance 0, eps keeps it finite)
  check_var(layer_norm(cst(tape, {1, 3}, {2, 2, 2}), Var{}, Var{}), {1, 3}, {0, 0, 0});
  check_var(layer_norm(tape.constant(Tensor::from({1, 2}, {1, 3})), Var{}, Var{}), {1, 2},
            {-1 / std::sqrt(1 + 1e-5), 1 / std::sqrt(1 + 1e-5)}, kTol32);
}

BOOST_AUTO_TEST_CASE(dropout_mask) {
  Tape tape;
  Var x = tape.input(f64({2, 3}, {1, 2, 3, 4, 5, 6}));
  for (Var y : {dropout(x, 0.5, 7, false), dropout(x, 0.0, 7, true)})  // the very same Var back
    BOOST_TEST((y.id() == x.id() && y.value().same_storage(x.value())));
  const int64_t n = 100000;
  const double p = 0.3;
  Var ones = tape.constant(Tensor::full({n}, 1.0, DType::f64));
  const std::vector<double> a = dropout(ones, p, 42, true).value().to_vector();
  int64_t kept = 0;
  bool scaled = true;
  for (double v : a) kept += v != 0.0, scaled = scaled && (v == 0.0 || std::abs(v - 1 / (1 - p)) <= kTol);
  BOOST_TEST(std::abs(double(kept) / double(n) - (1 - p)) < 0.01);
  BOOST_TEST(scaled);
  BOOST_TEST(dropout(ones, p, 42, true).value().to_vector() == a, boost::test_tools::per_element());
  const std::vector<double> b = dropout(ones, p, 43, true).value().to_vector();
  int64_t differ = 0;
  for (size_t i = 0; i < size_t(n); ++i) differ += (a[i] == 0.0) != (b[i] == 0.0);
  BOOST_TEST(differ > n / 10);  // independent masks differ in ~2 p (1 - p) = 42% of places
  check_close(dropout(tape.constant(Tensor::full({5}, 3.0, DType::f64)), 1.0, 1, true).value(), {0, 0, 0, 0, 0}, 0);
  // f32 keeps the dtype and the scale
  const std::vector<double> c = dropout(tape.constant(Tensor::full({1000}, 1.0)), 0.5, 9, true).value().to_vector();
  for (double v : c) BOOST_TEST((v == 0.0 || std::abs(v - 2.0) <= kTol32));
}

BOOST_AUTO_TEST_CASE(masked_fill_and_where) {
  Tape tape;
  Var x = cst(tape, {2, 3}, {1, 2, 3, 4, 5, 6});
  check_var(masked_fill(x, u8({3}, {1, 0, 1}), -7.5), {2, 3}, {-7.5, 2, -7.5, -7.5, 5, -7.5});
  check_var(masked_fill(x, u8({2, 1}, {0, 1}), 0.25), {2, 3}, {1, 2, 3, 0.25, 0.25, 0.25});
  Var b = cst(tape, {3}, {10, 20, 30});
  check_var(where(u8({2, 1}, {1, 0}), x, b), {2, 3}, {1, 2, 3, 10, 20, 30});
  check_var(where(u8({2, 3}, {1, 0, 1, 0, 1, 0}), x, b), {2, 3}, {1, 20, 3, 10, 5, 30});
  check_var(where(u8({3}, {0, 1, 0}), tape.constant(Tensor::scalar(9, DType::f64)), x), {2, 3}, {1, 9, 3, 4, 9, 6});
}

BOOST_AUTO_TEST_CASE(conv1d_against_a_loop) {
  Tape tape;
  // y[b, t, o] = bias[o] + sum_{c, j} W[o, c, j] x[b, t k + j, g cin + c], g = o / cout, by a direct loop
  for (auto [B, T, C, O, k, groups] : std::vector<std::array<int64_t, 6>>{{2, 4, 3, 2, 2, 1}, {2, 6, 4, 6, 3, 2},
                                                                          {1, 4, 4, 2, 4, 2}}) {
    BOOST_TEST_CONTEXT("groups " << groups << ", k " << k) {
      const int64_t cin = C / groups, cout = O / groups;
      const std::vector<double> xv = ramp(B * T * C, -1, 0.0625), wv = ramp(O * cin * k, 0.7, -0.09);
      const std::vector<double> bv = ramp(O, 0.3, 0.5);
      std::vector<double> want, want_nb;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < T / k; ++t)
          for (int64_t o = 0; o < O; ++o) {
            double s = 0;
            for (int64_t c = 0; c < cin; ++c)
              for (int64_t j = 0; j < k; ++j)
                s += wv[size_t((o * cin + c) * k + j)] * xv[size_t((b * T + t * k + j) * C + o / cout * cin + c)];
            want_nb.push_back(s);
            want.push_back(s + bv[size_t(o)]);
          }
      Var x = cst(tape, {B, T, C}, xv), w = cst(tape, {O, cin, k}, wv);
      check_var(conv1d(x, w, cst(tape, {O}, bv), groups), {B, T / k, O}, want);
      check_var(conv1d(x, w, Var{}, groups), {B, T / k, O}, want_nb);
    }
  }
}

BOOST_AUTO_TEST_CASE(cumsum_axes) {
  Tape tape;
  Var x = cst(tape, {2, 3, 2}, ramp(12, 1, 1));  // 1..12
  check_var(cumsum(x, 1), {2, 3, 2}, {1, 2, 4, 6, 9, 12, 7, 8, 16, 18, 27, 30});  // along time
  check_var(cumsum(x, -1), {2, 3, 2}, {1, 3, 3, 7, 5, 11, 7, 15, 9, 19, 11, 23});
  check_var(cumsum(cst(tape, {4}, {0.5, -1, 2, 0.25}), 0), {4}, {0.5, -0.5, 1.5, 1.75});
}

BOOST_AUTO_TEST_CASE(hand_computed_backwards) {
  // max: the whole gradient goes to the first maximum, along either axis
  check_close(grad_of({2, 4}, {1, 3, 3, 2, 5, 5, 5, -1},
                      [](Var x) { return sum(max(x, 1) * cst(x.tape(), {2}, {2, -1})); }),
              {0, 2, 0, 0, -1, 0, 0, 0}, kTol);
  check_close(grad_of({3, 2}, {4, 1, 4, 7, 0, 7}, [](Var x) { return sum(max(x, 0)); }), {1, 0, 0, 1, 0, 0}, kTol);
  // index_select with repeated indices accumulates
  const Tensor idx = Tensor::from_ints({4}, {2, 0, 2, 2});
  check_close(grad_of({3, 2}, ramp(6, 1, 1),
                      [&](Var x) { return sum(index_select(x, 0, idx) * cst(x.tape(), {4, 2}, ramp(8, 1, 1))); }),
              {3, 4, 0, 0, 13, 16}, kTol);
  // cross_entropy with sum reduction: softmax - onehot per valid row
  check_close(grad_of({2, 2}, {0, 0, 1, -1},
                      [](Var x) { return cross_entropy(x, Tensor::from_ints({2}, {1, -1}), -1, Reduction::sum); }),
              {0.5, -0.5, 0, 0}, kTol);
  // cumsum backward is a reverse cumsum; mean spreads 1/n
  check_close(grad_of({4}, {1, 2, 3, 4}, [](Var x) { return sum(cumsum(x, 0)) + mean(x); }), {4.25, 3.25, 2.25, 1.25},
              kTol);
  // masked_fill: no gradient where filled; slice and pad: the adjoint pair
  check_close(grad_of({2, 2}, {1, 2, 3, 4},
                      [](Var x) {
                        Var y = pad(slice(masked_fill(x, u8({2, 1}, {1, 0}), 9.0), 1, 1, 1), 0, 1, 0, 5.0);
                        check_var(y, {3, 1}, {5, 9, 4});
                        return sum(y * cst(x.tape(), {3, 1}, {100, 10, 1}));
                      }),
              {0, 0, 0, 1}, kTol);
  // broadcast operands of mul and where: gradients sum over the broadcast dims
  Tape t;
  Var a = t.input(f64({2, 3}, ramp(6, 1, 1))), b = t.input(f64({3}, {10, 20, 30})), c = t.input(f64({2, 1}, {7, 8}));
  t.backward(sum(a * b) + sum(where(u8({3}, {1, 0, 1}), c, b) * cst(t, {2, 3}, ramp(6, 1, 1))));
  check_close(t.grad(a), {10, 20, 30, 10, 20, 30}, kTol);
  check_close(t.grad(b), {5, 7 + 2 + 5, 9}, kTol);
  check_close(t.grad(c), {1 + 3, 4 + 6}, kTol);
}

BOOST_AUTO_TEST_SUITE_END()
