// Every kernel slot, on every float backend that fills it on the CPU (the fast cpu kernels,
// oneDNN, and the float reference itself), agrees with the double reference (slot.f64, plain
// loops) run on the same inputs widened to double, at odd sizes and on both sides of the
// fast kernels' threading threshold. Kernels are called directly, not through launch(), so
// a backend is tested even when it is not preferred. The fused kernels (attention, GEGLU, nBRC,
// hyper-connections) are in test_fused_kernels.cpp; the coverage check below runs after both.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/kernels.h"
#include "mnemo_config.h"
#if MNEMO_WITH_ONEDNN
#include "kernels/onednn/onednn.h"
#endif
#include "tests/kernels/agree.h"

namespace kn = mnemo::kernels;

namespace {

using namespace mnemo::test;

int64_t numel(const kn::Strided& s) { return std::accumulate(s.dims, s.dims + s.rank, 1L, std::multiplies<>()); }

struct GemmCase {
  bool ta, tb;
  int64_t M, N, K;
  double alpha = 1, beta = 0;
  int64_t batch = 1;
  bool share_b = false;  // b's batch stride is 0
  bool share_a = false;  // a's batch stride is 0
};

void check_gemm(const GemmCase& c, uint32_t seed) {
  kn::GemmDesc d;
  d.trans_a = c.ta, d.trans_b = c.tb, d.M = c.M, d.N = c.N, d.K = c.K, d.alpha = c.alpha, d.beta = c.beta;
  const int64_t a_rows = c.ta ? c.K : c.M, a_cols = c.ta ? c.M : c.K;
  const int64_t b_rows = c.tb ? c.N : c.K, b_cols = c.tb ? c.K : c.N;
  d.lda = a_cols + 3, d.ldb = b_cols + 1, d.ldc = c.N + 2;  // padded leading dimensions
  d.batch = c.batch, d.stride_c = c.M * d.ldc;
  d.stride_a = c.share_a ? 0 : a_rows * d.lda;
  d.stride_b = c.share_b ? 0 : b_rows * d.ldb;
  const Vf a = rand_vec((c.share_a ? 1 : c.batch) * a_rows * d.lda, -1, 1, seed);
  const Vf b = rand_vec((c.share_b ? 1 : c.batch) * b_rows * d.ldb, -1, 1, seed + 1);
  Vf c0 = rand_vec(c.batch * d.stride_c, -1, 1, seed + 2);  // C's padding must stay as it is
  if (c.beta == 0) std::fill(c0.begin(), c0.end(), std::nanf(""));  // beta = 0: C is not read
  std::ostringstream what;
  what << "ta=" << c.ta << " tb=" << c.tb << " M=" << c.M << " N=" << c.N << " K=" << c.K << " alpha=" << c.alpha
       << " beta=" << c.beta << " batch=" << c.batch << " share_a=" << c.share_a << " share_b=" << c.share_b;
  const double tol = kTol * std::sqrt(double(std::max<int64_t>(c.K, 1)));
  agree(kn::gemm, what.str(), {"c"}, tol, [&]<class T>(auto* fn, T) {
    auto cc = as<T>(c0);
    fn(d, as<T>(a).data(), as<T>(b).data(), cc.data());
    return Outs<T>{cc};
  });
}

}  // namespace

BOOST_AUTO_TEST_SUITE(backends_agree)
BOOST_AUTO_TEST_SUITE(elementwise)

BOOST_AUTO_TEST_CASE(every_slot_has_reference_f32_and_f64) {
  kn::init();
  for (const kn::KernelSlot* s : kn::all_kernels()) {
    BOOST_TEST_CONTEXT("slot " << s->name) {
      BOOST_TEST(s->filled[int(Backend::reference)]);
      BOOST_TEST(s->has_f64);
      if (!kn::onednn_built()) BOOST_TEST(!s->filled[int(Backend::onednn)]);
      // CUDA kernels take device pointers: agree() never runs them (test_cuda_kernels.cpp does)
      if (!MNEMO_WITH_CUDA) BOOST_TEST(!s->filled[int(Backend::cuda)]);
    }
  }
}

BOOST_AUTO_TEST_CASE(vector_basics) {
  for (int64_t n : {int64_t(1), int64_t(17), int64_t(130), kBig}) {
    const Vf x = rand_vec(n, -2, 2, 1), y0 = rand_vec(n, -2, 2, 2);
    Vf bad = x;
    bad[size_t(n - 1)] = -kInf;
    if (n > 10) bad[3] = std::nanf(""), bad[10] = kInf;
    agree(kn::fill, sz("n", n), {"y"}, 0.0, [&]<class T>(auto* fn, T) {
      auto y = junk<T>(n);
      fn(y.data(), n, T(1.25f));
      return Outs<T>{y};
    });
    agree(kn::axpy, sz("n", n), {"y"}, kTol, [&]<class T>(auto* fn, T) {
      auto y = as<T>(y0);
      fn(y.data(), as<T>(x).data(), n, T(0.7f)); return Outs<T>{y};
    });
    agree(kn::sum_squares, sz("n", n), {"sum"}, kTol,
          [&]<class T>(auto* fn, T) {
            double sum = -1;
            fn(&sum, as<T>(x).data(), n);
            return Outs<T>{{T(sum)}};
          });
    agree(kn::count_non_finite, sz("n", n), {"count"}, 0.0, [&]<class T>(auto* fn, T) {
      return Outs<T>{{T(fn(as<T>(bad).data(), n)), T(fn(as<T>(x).data(), n))}};
    });
  }
}

BOOST_AUTO_TEST_CASE(unary_every_op) {
  using U = kn::Unary;
  for (int i = 0; i <= int(U::abs); ++i) {
    const U op = U(i);
    const bool positive = op == U::log || op == U::sqrt || op == U::rsqrt || op == U::pow || op == U::rdiv;
    const float alpha = op == U::pow ? 1.7f : op == U::rdiv ? 2.5f : 0.8f, beta = -0.4f;
    for (int64_t n : {int64_t(1), int64_t(33), kBig}) {
      const Vf x = positive ? rand_vec(n, 0.1f, 3, 10 + i) : rand_vec(n, -3, 3, 10 + i);
      const Vf dy = rand_vec(n, -1, 1, 50 + i);
      const std::string what = std::string(kn::unary_name(op)) + " " + sz("n", n);
      auto fwd = [&]<class T>(auto* fn, T) {
        auto y = junk<T>(n);
        fn(op, y.data(), as<T>(x).data(), n, T(alpha), T(beta)); return Outs<T>{y};
      };
      agree(kn::unary_forward, what, {"y"}, kTol, fwd);
      const Vf y = saved(kn::unary_forward, fwd)[0];
      agree(kn::unary_backward, what, {"dx"}, kTol, [&]<class T>(auto* fn, T) {
        auto dx = junk<T>(n);
        fn(op, dx.data(), as<T>(dy).data(), as<T>(x).data(), as<T>(y).data(), n, T(alpha), T(beta));
        return Outs<T>{dx};
      });
    }
  }
}

BOOST_AUTO_TEST_CASE(binary_and_where_broadcast) {
  // small: a (3,1,37), b (5,1) -> (3,5,37);  big: a (4,100,101), b (101) -> (4,100,101);
  // a (4,100,1) broadcast along the last dim; a read transposed (no unit inner stride)
  const kn::Strided walks[] = {walk({3, 5, 37}, {{185, 37, 1}, {37, 0, 1}, {0, 1, 0}}),
                               walk({4, 100, 101}, {{10100, 101, 1}, {10100, 101, 1}, {0, 0, 1}}),
                               walk({4, 100, 101}, {{10100, 101, 1}, {100, 1, 0}, {10100, 101, 1}}),
                               walk({4, 100, 101}, {{10100, 101, 1}, {10100, 1, 100}, {0, 0, 1}})};
  const int64_t a_size[] = {3 * 37, 40400, 400, 40400}, b_size[] = {5, 101, 40400, 101};
  const char* const names[] = {"add", "sub", "mul", "div"};
  for (int w = 0; w < 4; ++w) {
    const int64_t n = numel(walks[w]);
    const Vf a = rand_vec(a_size[w], -2, 2, 20 + w), b = rand_vec(b_size[w], 0.5f, 2, 30 + w);
    for (int op = 0; op < 4; ++op)
      agree(kn::binary, std::string(names[op]) + " " + sz("numel", n), {"out"}, kTol, [&]<class T>(auto* fn, T) {
        auto out = junk<T>(n);
        fn(kn::Binary(op), out.data(), as<T>(a).data(), as<T>(b).data(), walks[w]); return Outs<T>{out};
      });
  }
  // where: small cond (5,37), a full, b scalar;  big cond full, a (100,101), b (4,1,1)
  const kn::Strided wwalks[] = {walk({3, 5, 37}, {{0, 37, 1}, {185, 37, 1}}),
                                walk({4, 100, 101}, {{10100, 101, 1}, {0, 101, 1}, {1, 0, 0}})};
  const int64_t c_size[] = {185, 40400}, wa_size[] = {555, 10100}, wb_size[] = {1, 4};
  for (int w = 0; w < 2; ++w) {
    const int64_t n = numel(wwalks[w]);
    std::vector<uint8_t> cond(static_cast<size_t>(c_size[w]));
    for (size_t i = 0; i < cond.size(); ++i) cond[i] = uint8_t((i * 7 + i / 3) % 3 == 0);
    const Vf a = rand_vec(wa_size[w], -2, 2, 40 + w), b = rand_vec(wb_size[w], -2, 2, 50 + w);
    agree(kn::where, sz("numel", n), {"out"}, 0.0, [&]<class T>(auto* fn, T) {
      auto out = junk<T>(n);
      fn(out.data(), cond.data(), as<T>(a).data(), as<T>(b).data(), wwalks[w]); return Outs<T>{out};
    });
  }
}

BOOST_AUTO_TEST_CASE(strided_copy_and_sum_to) {
  // permute (3,5,7) -> (7,3,5); transpose (200,201); expand (37) -> (5,37)
  const kn::Strided copies[] = {walk({7, 3, 5}, {{1, 35, 7}}), walk({201, 200}, {{1, 201}}), walk({5, 37}, {{0, 1}})};
  const int64_t in_size[] = {105, 40200, 37};
  for (int c = 0; c < 3; ++c) {
    const Vf in = rand_vec(in_size[c], -2, 2, 60 + c);
    agree(kn::strided_copy, sz("case", c), {"out"}, 0.0, [&]<class T>(auto* fn, T) {
      auto out = junk<T>(numel(copies[c]));
      fn(out.data(), as<T>(in).data(), copies[c]); return Outs<T>{out};
    });
  }
  // Each small and above the threshold: (R,C)->(1,C); (A,B,C)->(A,1,C); rows of a transposed
  // input; (R,C)->(R,1), the last dim summed; (A,S,C)->(1,S,1); everything to a scalar, once
  // as one long run; a few outputs over many rows, where the summed range is split in parts.
  const kn::Strided sums[] = {walk({5, 37}, {{0, 1}, {37, 1}}),
                              walk({200, 300}, {{0, 1}, {300, 1}}),
                              walk({3, 5, 37}, {{37, 0, 1}, {185, 37, 1}}),
                              walk({8, 100, 50}, {{50, 0, 1}, {5000, 50, 1}}),
                              walk({50, 900}, {{1, 0}, {1, 50}}),
                              walk({7, 9}, {{1, 0}, {9, 1}}),
                              walk({300, 256}, {{1, 0}, {256, 1}}),
                              walk({6, 4, 2000}, {{0, 1, 0}, {8000, 2000, 1}}),
                              walk({200, 300}, {{0, 0}, {300, 1}}),
                              walk({70001}, {{0}, {1}}),
                              walk({2304, 20}, {{0, 1}, {20, 1}})};
  constexpr int kSums = int(std::size(sums));
  for (int c = 0; c < kSums; ++c) {
    const kn::Strided& w = sums[c];
    int64_t out_size = 1;  // the output's extent: one past its largest offset
    for (int d = 0; d < w.rank; ++d) out_size += (w.dims[d] - 1) * w.strides[0][d];
    const Vf in = rand_vec(numel(w), -2, 2, 70 + c);
    // An oracle independent of the kernel's loop structure: every input element added in turn.
    std::vector<double> expect(size_t(out_size), 0.0);
    for (int64_t i = 0; i < numel(w); ++i) {
      int64_t rem = i, in_off = 0, out_off = 0;
      for (int d = w.rank - 1; d >= 0; --d) {
        const int64_t k = rem % w.dims[d];
        rem /= w.dims[d];
        in_off += k * w.strides[1][d];
        out_off += k * w.strides[0][d];
      }
      expect[size_t(out_off)] += double(in[size_t(in_off)]);
    }
    agree(kn::sum_to, sz("case", c), {"out"}, kTol, [&]<class T>(auto* fn, T) {
      auto out = junk<T>(out_size);
      fn(out.data(), as<T>(in).data(), w);
      if constexpr (std::is_same_v<T, double>)
        for (int64_t o = 0; o < out_size; ++o)
          BOOST_TEST(std::abs(out[size_t(o)] - expect[size_t(o)]) <= 1e-9 * (1 + std::abs(expect[size_t(o)])),
                     "sum_to case " << c << " output " << o << ": " << out[size_t(o)] << " vs " << expect[size_t(o)]);
      return Outs<T>{out};
    });
  }
}

BOOST_AUTO_TEST_CASE(reductions_and_cumsum) {
  const int64_t shapes[][3] = {{1, 1, 1}, {3, 37, 5}, {7, 17, 1}, {1, 130, 33}, {4, 100, 101}};
  for (const auto& sh : shapes) {
    const int64_t outer = sh[0], n = sh[1], inner = sh[2], total = outer * n * inner;
    const std::string what = sz("outer", outer) + " " + sz("n", n) + " " + sz("inner", inner);
    Vf x = rand_vec(total, -2, 2, 80);
    for (int64_t o = 0; o < outer && n >= 4; ++o)  // tied maxima in every other column: backward picks the first
      for (int64_t j = 0; j < inner; j += 2)
        x[size_t((o * n + 1) * inner + j)] = x[size_t((o * n + n - 2) * inner + j)] = 5.f;
    for (kn::Reduce op : {kn::Reduce::sum, kn::Reduce::max}) {
      auto fwd = [&]<class T>(auto* fn, T) {
        auto y = junk<T>(outer * inner);
        fn(op, y.data(), as<T>(x).data(), outer, n, inner); return Outs<T>{y};
      };
      agree(kn::reduce, (op == kn::Reduce::sum ? "sum " : "max ") + what, {"y"}, kTol, fwd);
      if (op == kn::Reduce::sum) continue;
      const Vf y = saved(kn::reduce, fwd)[0], dy = rand_vec(outer * inner, -1, 1, 81);
      agree(kn::reduce_max_backward, what, {"dx"}, 0.0, [&]<class T>(auto* fn, T) {
        auto dx = junk<T>(total);
        fn(dx.data(), as<T>(dy).data(), as<T>(x).data(), as<T>(y).data(), outer, n, inner); return Outs<T>{dx};
      });
    }
    for (bool reverse : {false, true})
      agree(kn::cumsum, what + (reverse ? " reverse" : " forward"), {"y"}, kTol, [&]<class T>(auto* fn, T) {
        auto y = junk<T>(total);
        fn(y.data(), as<T>(x).data(), outer, n, inner, reverse); return Outs<T>{y};
      });
  }
}

BOOST_AUTO_TEST_CASE(gemm_cases) {
  uint32_t seed = 100;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check_gemm({ta, tb, 7, 5, 13}, seed += 3);
      check_gemm({ta, tb, 7, 5, 13, 0.75, -0.5}, seed += 3);
      check_gemm({ta, tb, 64, 48, 96}, seed += 3);
      check_gemm({ta, tb, 64, 48, 96, -1.25, 1.0}, seed += 3);
      check_gemm({ta, tb, 1, 1, 1}, seed += 3);
      check_gemm({ta, tb, 3, 17, 7, 1, 0.5}, seed += 3);
      check_gemm({ta, tb, 33, 65, 130, 0.5, 0}, seed += 3);
      check_gemm({ta, tb, 65, 1, 33, 1, 1.0, 3}, seed += 3);
      check_gemm({ta, tb, 17, 33, 65, 1, 0, 3, false, true}, seed += 3);  // a shared (stride 0)
    }
  check_gemm({false, false, 7, 5, 13, 1, 0, 3, true}, seed += 3);  // batched, b shared (stride 0)
  check_gemm({true, false, 7, 5, 13, 0.5, 0.25, 4, false}, seed += 3);
  check_gemm({false, true, 64, 48, 96, 1, 0, 3, true}, seed += 3);
  check_gemm({false, false, 7, 5, 0, 1, 0.5}, seed += 3);  // K = 0: C = beta C
  // Products large enough to be cut into bands of C, one per thread (meson runs the tests
  // with 2): bands of rows, and of columns when C is wide and short.
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check_gemm({ta, tb, 203, 151, 163, 1, 0.5}, seed += 3);
      check_gemm({ta, tb, 19, 401, 611, 0.5, 0, 2}, seed += 3);
    }
  // Batches of tiny products (the direct path): hyper-connection shapes, every transpose,
  // with and without beta, and a batch above the OpenMP threshold.
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check_gemm({ta, tb, 4, 37, 4, 1, 0, 5}, seed += 3);
      check_gemm({ta, tb, 4, 4, 37, -0.5, 1.0, 5}, seed += 3);
      check_gemm({ta, tb, 1, 37, 3, 1, 0.25, 6, true}, seed += 3);
      check_gemm({ta, tb, 3, 1, 37, 2, 0, 4}, seed += 3);
    }
  check_gemm({true, false, 4, 256, 4, 1, 0, 200}, seed += 3);
  check_gemm({false, true, 4, 4, 256, 1, 1.0, 200}, seed += 3);
}

// oneDNN with a transposed left operand copied to a plain layout first, in place, and as the
// automatic rule picks (kernels/onednn/onednn.h): the same product every way. 389 x 77 passes
// the rule's bounds; 70 x 67 x 131 cuts the copy into partial 8 x 8 tiles.
BOOST_AUTO_TEST_CASE(gemm_transposed_a_copied_or_in_place,
                     *boost::unit_test::precondition([](boost::unit_test::test_unit_id) {
                       boost::test_tools::assertion_result r(kn::onednn_built());
                       r.message() << "oneDNN is not built";
                       return r;
                     })) {
#if MNEMO_WITH_ONEDNN
  using kn::onednn::TransposedA;
  uint32_t seed = 900;
  for (const TransposedA mode : {TransposedA::copy, TransposedA::in_place, TransposedA::automatic}) {
    kn::onednn::set_transposed_a(mode);
    for (const bool tb : {false, true}) {
      check_gemm({true, tb, 389, 77, 53, 0.5, 0.25}, seed += 3);
      check_gemm({true, tb, 70, 67, 131, 0.5, 0.25}, seed += 3);
    }
  }
  kn::onednn::set_transposed_a(TransposedA::automatic);
#endif
}

BOOST_AUTO_TEST_CASE(copy_axis_cases) {
  struct Case { int64_t outer, inner, src_n, src_off, dst_n, dst_off, len; };
  for (const Case& c : {Case{1, 1, 1, 0, 1, 0, 1}, Case{3, 5, 11, 2, 9, 1, 6}, Case{40, 101, 20, 5, 12, 2, 10}})
    for (bool acc : {false, true}) {
      const kn::AxisCopy d{c.outer, c.inner, c.src_n, c.src_off, c.dst_n, c.dst_off, c.len, acc};
      const Vf src = rand_vec(c.outer * c.src_n * c.inner, -2, 2, 90);
      const Vf dst0 = rand_vec(c.outer * c.dst_n * c.inner, -2, 2, 91);
      agree(kn::copy_axis, sz("outer", c.outer) + (acc ? " accumulate" : " copy"), {"dst"}, kTol,
            [&]<class T>(auto* fn, T) {
              auto dst = as<T>(dst0);
              fn(dst.data(), as<T>(src).data(), d); return Outs<T>{dst};
            });
    }
}

BOOST_AUTO_TEST_CASE(gather_and_scatter_add) {
  struct Case { int64_t outer, n_src, n_idx, inner; std::vector<int32_t> idx; };
  const Case cases[] = {{1, 1, 1, 1, {0}},
                        {3, 11, 8, 5, {0, 3, 3, 10, 7, 3, 0, 5}},
                        {2, 7, 9, 1, {6, -1, 0, 0, 3, -1, 6, 2, 1}},  // holes (-1): zeros out, nothing back
                        {4, 50, 100, 101, rand_idx(100, 50, 92)}};
  for (const Case& c : cases) {  // repeated indices in all but the first
    const std::string what = sz("outer", c.outer) + " " + sz("n_idx", c.n_idx) + " " + sz("inner", c.inner);
    const Vf x = rand_vec(c.outer * c.n_src * c.inner, -2, 2, 93);
    const Vf dy = rand_vec(c.outer * c.n_idx * c.inner, -2, 2, 94);
    agree(kn::gather, what, {"out"}, 0.0, [&]<class T>(auto* fn, T) {
      auto out = junk<T>(c.outer * c.n_idx * c.inner);
      fn(out.data(), as<T>(x).data(), c.idx.data(), c.outer, c.n_src, c.n_idx, c.inner); return Outs<T>{out};
    });
    agree(kn::scatter_add, what, {"dx"}, kTol, [&]<class T>(auto* fn, T) {
      auto dx = as<T>(x);  // scatter_add accumulates into an initialised dx
      fn(dx.data(), as<T>(dy).data(), c.idx.data(), c.outer, c.n_src, c.n_idx, c.inner); return Outs<T>{dx};
    });
  }
}

BOOST_AUTO_TEST_CASE(softmax_and_cross_entropy) {
  const int64_t shapes[][2] = {{5, 37}, {3, 1}, {7, 130}, {64, 601}};
  for (const auto& sh : shapes) {
    const int64_t rows = sh[0], n = sh[1];
    const std::string what = sz("rows", rows) + " " + sz("n", n);
    const Vf x = rand_vec(rows * n, -5, 5, 110), dy = rand_vec(rows * n, -1, 1, 111);
    Vf x_inf = x;
    std::fill(x_inf.begin() + 2 * n, x_inf.begin() + 3 * n, -kInf);  // an all -inf row
    x_inf[0] = -kInf;  // and a single -inf: a key that is masked out
    for (bool log : {false, true}) {
      auto fwd = [&]<class T>(auto* fn, T) {
        auto y = junk<T>(rows * n);
        fn(y.data(), as<T>(x_inf).data(), rows, n, log); return Outs<T>{y};
      };
      agree(kn::softmax_forward, what + (log ? " log" : ""), {"y"}, kTol, fwd);
      const Vf y = saved(kn::softmax_forward, fwd)[0];
      agree(kn::softmax_backward, what + (log ? " log" : ""), {"dx"}, kTol, [&]<class T>(auto* fn, T) {
        auto dx = junk<T>(rows * n);
        fn(dx.data(), as<T>(dy).data(), as<T>(y).data(), rows, n, log); return Outs<T>{dx};
      });
    }
    constexpr int32_t kIgnore = -100;
    std::vector<int32_t> target = rand_idx(rows, int32_t(n), 112);
    target[size_t(rows - 1)] = kIgnore;  // an ignored row: zero loss, zero gradient
    auto fwd = [&]<class T>(auto* fn, T) {
      auto loss = junk<T>(rows), lse = junk<T>(rows);
      fn(loss.data(), lse.data(), as<T>(x).data(), target.data(), rows, n, kIgnore); return Outs<T>{loss, lse};
    };
    agree(kn::cross_entropy_forward, what, {"loss", "lse"}, kTol, fwd);
    const Vf lse = saved(kn::cross_entropy_forward, fwd)[1], dloss = rand_vec(rows, 0.5f, 2, 113);
    agree(kn::cross_entropy_backward, what, {"dlogits"}, kTol, [&]<class T>(auto* fn, T) {
      auto dl = junk<T>(rows * n);
      fn(dl.data(), as<T>(dloss).data(), as<T>(x).data(), as<T>(lse).data(), target.data(), rows, n, kIgnore);
      return Outs<T>{dl};
    });
  }
}

BOOST_AUTO_TEST_CASE(normalisations) {
  const int64_t shapes[][2] = {{5, 37}, {3, 1}, {7, 33}, {64, 601}};
  for (const auto& sh : shapes) {
    const int64_t rows = sh[0], D = sh[1], n = rows * D;
    const Vf x = rand_vec(n, 1, 4, 120), dy = rand_vec(n, -1, 1, 121);
    const Vf gain = rand_vec(D, 0.5f, 1.5f, 122), bias = rand_vec(D, -0.5f, 0.5f, 123);
    const float eps = 1e-5f;
    for (bool affine : {true, false}) {  // with gain and bias, and with nullptr for both
      const std::string what = sz("rows", rows) + " " + sz("D", D) + (affine ? " gain+bias" : " no gain");
      auto ln = [&]<class T>(auto* fn, T) {
        auto y = junk<T>(n), mean = junk<T>(rows), rstd = junk<T>(rows);
        auto g = as<T>(gain), b = as<T>(bias);
        fn(y.data(), mean.data(), rstd.data(), as<T>(x).data(), opt(g, affine), opt(b, affine), rows, D, T(eps));
        return Outs<T>{y, mean, rstd};
      };
      agree(kn::layer_norm_forward, what, {"y", "mean", "rstd"}, kTol, ln);
      const std::vector<Vf> ln_saved = saved(kn::layer_norm_forward, ln);
      agree(kn::layer_norm_backward, what, {"dx", "dgain", "dbias"}, kTol, [&]<class T>(auto* fn, T) {
        auto dx = junk<T>(n), dg = junk<T>(D), db = junk<T>(D), g = as<T>(gain);
        fn(dx.data(), opt(dg, affine), opt(db, affine), as<T>(dy).data(), as<T>(x).data(),
           as<T>(ln_saved[1]).data(), as<T>(ln_saved[2]).data(), opt(g, affine), rows, D);
        return Outs<T>{dx, dg, db};
      });
      auto rms = [&]<class T>(auto* fn, T) {
        auto y = junk<T>(n), rstd = junk<T>(rows), g = as<T>(gain);
        fn(y.data(), rstd.data(), as<T>(x).data(), opt(g, affine), rows, D, T(eps)); return Outs<T>{y, rstd};
      };
      agree(kn::rms_norm_forward, what, {"y", "rstd"}, kTol, rms);
      const Vf rms_rstd = saved(kn::rms_norm_forward, rms)[1];
      agree(kn::rms_norm_backward, what, {"dx", "dgain"}, kTol, [&]<class T>(auto* fn, T) {
        auto dx = junk<T>(n), dg = junk<T>(D), g = as<T>(gain);
        fn(dx.data(), opt(dg, affine), as<T>(dy).data(), as<T>(x).data(), as<T>(rms_rstd).data(), opt(g, affine),
           rows, D);
        return Outs<T>{dx, dg};
      });
    }
    // l2 norm, with row 1 zero so that its norm is clamped at eps
    const std::string what = sz("rows", rows) + " " + sz("D", D);
    Vf xl = rand_vec(n, -2, 2, 124);
    std::fill(xl.begin() + D, xl.begin() + 2 * D, 0.f);
    const float l2eps = 1e-6f;
    auto fwd = [&]<class T>(auto* fn, T) {
      auto y = junk<T>(n), norm = junk<T>(rows);
      fn(y.data(), norm.data(), as<T>(xl).data(), rows, D, T(l2eps)); return Outs<T>{y, norm};
    };
    agree(kn::l2_norm_forward, what, {"y", "norm"}, kTol, fwd);
    const std::vector<Vf> s = saved(kn::l2_norm_forward, fwd);
    agree(kn::l2_norm_backward, what, {"dx"}, kTol, [&]<class T>(auto* fn, T) {
      auto dx = junk<T>(n);
      fn(dx.data(), as<T>(dy).data(), as<T>(s[0]).data(), as<T>(s[1]).data(), rows, D, T(l2eps)); return Outs<T>{dx};
    });
  }
}

BOOST_AUTO_TEST_CASE(dropout_same_mask) {
  for (int64_t n : {int64_t(1), int64_t(37), kBig})
    for (float p : {0.3f, 0.f, 0.1f, 1.f}) {  // 1: everything dropped, scale 0
      const Vf x = rand_vec(n, 0.5f, 2, 130);  // never 0, so a 0 output means dropped
      // "dropped" is 0 or 1, so the tolerance makes its comparison exact
      agree(kn::dropout, sz("n", n) + " p=" + std::to_string(p), {"y", "dropped"}, kTol, [&]<class T>(auto* fn, T) {
        auto y = junk<T>(n), dropped = junk<T>(n);
        fn(y.data(), as<T>(x).data(), n, T(p), uint64_t(1234));
        for (size_t i = 0; i < y.size(); ++i) dropped[i] = y[i] == T(0) ? T(1) : T(0);
        return Outs<T>{y, dropped};
      });
    }
}

BOOST_AUTO_TEST_CASE(optimizer_steps) {
  for (int64_t n : {int64_t(1), int64_t(37), kBig}) {
    const Vf w0 = rand_vec(n, -1, 1, 140), g = rand_vec(n, -1, 1, 141);
    const Vf m0 = rand_vec(n, -0.1f, 0.1f, 142), v0 = rand_vec(n, 0, 0.01f, 143);
    const kn::AdamWHyper h{1e-3, 0.9, 0.999, 1e-8, 0.01, 1 - std::pow(0.9, 3), 1 - std::pow(0.999, 3)};
    agree(kn::adamw_step, sz("n", n), {"w", "m", "v"}, kTol, [&]<class T>(auto* fn, T) {
      auto w = as<T>(w0), m = as<T>(m0), v = as<T>(v0);
      fn(w.data(), as<T>(g).data(), m.data(), v.data(), n, h); return Outs<T>{w, m, v};
    });
    const kn::SgdHyper sgd[] = {{0.1, 0.9, 0.1, 1e-2, false, false}, {0.1, 0.9, 0.0, 1e-2, true, false},
                                {0.1, 0.9, 0.0, 0.0, true, true}, {0.05, 0.0, 0.0, 1e-2, false, false}};
    for (const kn::SgdHyper& hs : sgd) {
      std::ostringstream what;
      what << sz("n", n) << " momentum=" << hs.momentum << " dampening=" << hs.dampening
           << " nesterov=" << hs.nesterov << " first_step=" << hs.first_step;
      agree(kn::sgd_step, what.str(), {"w", "buf"}, kTol, [&]<class T>(auto* fn, T) {
        auto w = as<T>(w0), buf = as<T>(m0);
        fn(w.data(), as<T>(g).data(), buf.data(), n, hs); return Outs<T>{w, buf};
      });
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()  // elementwise

// After both files' cases: every float kernel of every slot was compared with the reference.
BOOST_AUTO_TEST_CASE(every_float_kernel_was_compared, *boost::unit_test::depends_on("backends_agree/elementwise") *
                                                          boost::unit_test::depends_on("backends_agree/fused")) {
  kn::init();
  for (const kn::KernelSlot* s : kn::all_kernels())
    for (Backend b : kFloatBackends)
      if (s->filled[int(b)])
        BOOST_TEST(compared()[b].count(s->name) == 1u, "slot '" << s->name << "' has a " << kn::backend_name(b)
                                                                 << " kernel that no agreement test compared: add a case");
}

BOOST_AUTO_TEST_SUITE_END()  // backends_agree
