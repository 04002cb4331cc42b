// The oneDNN backend's switches: bf16 matmuls stay close to f32, and where the CPU cannot
// run them (ONEDNN_MAX_CPU_ISA=AVX2 stands in for such a CPU in the onednn_avx2 test)
// the first GEMM warns once, switches bf16 off and returns exact f32 results. A transposed
// left operand gives the same product whether it is copied to a plain layout first or not,
// and without AVX-512 the copy is made for the shapes it pays for. Without
// oneDNN, or without the CPU the case needs, a case is skipped by its precondition (and a
// run of skipped cases only exits 77: meson's SKIP).
#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "autograd/ops/ops.h"
#include "kernels/kernels.h"
#include "mnemo_config.h"
#if MNEMO_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>

#include "kernels/onednn/onednn.h"
#endif

using namespace mnemo;
namespace tt = boost::test_tools;
namespace ut = boost::unit_test;

namespace {

#if MNEMO_WITH_ONEDNN
// C = alpha op(A) op(B) + beta C through the oneDNN backend, every leading dimension padded,
// against a double sum; C's padding must come back untouched. Returns the largest error.
double transposed_a_error(int64_t M, int64_t N, int64_t K, bool trans_b, uint32_t seed) {
  kernels::GemmDesc d;
  d.trans_a = true, d.trans_b = trans_b, d.M = M, d.N = N, d.K = K, d.alpha = 0.5, d.beta = 0.25;
  d.lda = M + 3, d.ldb = (trans_b ? K : N) + 1, d.ldc = N + 2;
  Rng rng(seed);
  const auto vec = [&](int64_t n) {
    const std::vector<double> v = Tensor::randn({n}, rng).to_vector();
    return std::vector<float>(v.begin(), v.end());
  };
  const std::vector<float> a = vec(K * d.lda), b = vec((trans_b ? N : K) * d.ldb), c0 = vec(M * d.ldc);
  std::vector<float> c = c0;
  kernels::onednn::gemm(d, a.data(), b.data(), c.data());
  double worst = 0;
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double sum = 0;
      for (int64_t k = 0; k < K; ++k)
        sum += double(a[size_t(k * d.lda + i)]) * (trans_b ? b[size_t(j * d.ldb + k)] : b[size_t(k * d.ldb + j)]);
      const double want = 0.5 * sum + 0.25 * c0[size_t(i * d.ldc + j)];
      worst = std::max(worst, std::abs(want - c[size_t(i * d.ldc + j)]));
    }
    for (int64_t j = N; j < d.ldc; ++j)
      if (c[size_t(i * d.ldc + j)] != c0[size_t(i * d.ldc + j)]) worst = INFINITY;  // wrote past N
  }
  return worst;
}

kernels::GemmDesc weight_gradient(int64_t M, int64_t N) {
  kernels::GemmDesc d;
  d.trans_a = true, d.M = M, d.N = N, d.K = 1024, d.lda = M, d.ldb = N, d.ldc = N;
  return d;
}

Tensor product(const Tensor& a, const Tensor& b) {
  Tape t;
  return matmul(t.constant(a), t.constant(b), {.trans_b = true}).value();
}
#endif

tt::assertion_result onednn_is_built(ut::test_unit_id) {
  tt::assertion_result r(kernels::onednn_built());
  r.message() << "oneDNN is not built";
  return r;
}

// The fallback test needs oneDNN held below avx512_bf16 (meson sets ONEDNN_MAX_CPU_ISA=AVX2
// for it); the bf16 accuracy test needs the opposite.
tt::assertion_result isa_limited(ut::test_unit_id) {
  tt::assertion_result r(std::getenv("ONEDNN_MAX_CPU_ISA") != nullptr);
  r.message() << "ONEDNN_MAX_CPU_ISA is not set (meson's onednn_avx2 test sets it)";
  return r;
}

tt::assertion_result cpu_runs_bf16(ut::test_unit_id) {
#if MNEMO_WITH_ONEDNN
  const auto isa = dnnl::get_effective_cpu_isa();
  const bool bf16 = isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
  tt::assertion_result r(bf16 && !std::getenv("ONEDNN_MAX_CPU_ISA"));
  r.message() << "oneDNN cannot run bf16 matmuls here (CPU or ONEDNN_MAX_CPU_ISA)";
  return r;
#else
  tt::assertion_result r(false);
  r.message() << "oneDNN is not built";
  return r;
#endif
}

}  // namespace

BOOST_AUTO_TEST_SUITE(onednn)

BOOST_AUTO_TEST_CASE(backend_matches_build) {
  kernels::init();
  BOOST_TEST(kernels::onednn_built() == bool(MNEMO_WITH_ONEDNN));
  BOOST_TEST(kernels::gemm.filled[int(kernels::Backend::onednn)] == bool(MNEMO_WITH_ONEDNN));
}

BOOST_AUTO_TEST_CASE(bf16_matmul_is_close_to_f32, *ut::precondition(onednn_is_built) *
                                                      ut::precondition(cpu_runs_bf16)) {
#if MNEMO_WITH_ONEDNN
  Rng rng(1);
  const Tensor a = Tensor::randn({64, 256}, rng), b = Tensor::randn({96, 256}, rng);
  const Tensor want = product(a, b);
  kernels::onednn::set_bf16_matmul(true);
  const Tensor got = product(a, b);
  const bool still_bf16 = kernels::onednn::bf16_matmul();
  kernels::onednn::set_bf16_matmul(false);
  const auto w = want.to_vector(), g = got.to_vector();
  double worst = 0, scale = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    worst = std::max(worst, std::abs(w[i] - g[i]));
    scale = std::max(scale, std::abs(w[i]));
  }
  BOOST_TEST_MESSAGE("bf16 matmul: max abs diff " << worst << " of " << scale);
  BOOST_TEST(still_bf16);
  BOOST_TEST(worst < 0.03 * scale);  // 8-bit mantissas, f32 accumulation
  BOOST_TEST(worst > 0.0);           // it really ran in bf16
#endif
}

BOOST_AUTO_TEST_CASE(transposed_a_copied_or_in_place_gives_the_product, *ut::precondition(onednn_is_built)) {
#if MNEMO_WITH_ONEDNN
  using kernels::onednn::TransposedA;
  uint32_t seed = 10;
  for (const TransposedA mode : {TransposedA::copy, TransposedA::in_place, TransposedA::automatic}) {
    kernels::onednn::set_transposed_a(mode);
    // 389 x 77 passes the automatic rule's bounds; 70 x 67 x 131 is cut into partial 8 x 8 tiles
    for (const auto& [M, N, K] : {std::array<int64_t, 3>{389, 77, 53}, {70, 67, 131}})
      for (const bool trans_b : {false, true})
        BOOST_TEST(transposed_a_error(M, N, K, trans_b, ++seed) < 1e-4,
                   "mode " << int(mode) << " M " << M << " N " << N << " K " << K << " trans_b " << trans_b);
  }
  kernels::onednn::set_transposed_a(TransposedA::automatic);
  BOOST_TEST(kernels::onednn::copies_transposed_a(weight_gradient(389, 77)) ==
             kernels::onednn::copies_transposed_a(weight_gradient(512, 256)));
#endif
}

BOOST_AUTO_TEST_SUITE_END()

// Run by meson with ONEDNN_MAX_CPU_ISA=AVX2: oneDNN as on a CPU without AVX-512.
BOOST_AUTO_TEST_SUITE(onednn_avx2)

BOOST_AUTO_TEST_CASE(without_avx512_weight_gradients_copy_a_where_it_pays, *ut::precondition(onednn_is_built) *
                                                                              ut::precondition(isa_limited)) {
#if MNEMO_WITH_ONEDNN
  namespace o = kernels::onednn;
  o::set_transposed_a(o::TransposedA::automatic);
  BOOST_TEST(o::copies_transposed_a(weight_gradient(1024, 256)));  // MemXL small's FF weight gradient
  BOOST_TEST(o::copies_transposed_a(weight_gradient(512, 512)));
  BOOST_TEST(!o::copies_transposed_a(weight_gradient(256, 256)));   // in place is as fast
  BOOST_TEST(!o::copies_transposed_a(weight_gradient(1024, 512)));  // M N = 2^19: same kernel either way
  kernels::GemmDesc batched = weight_gradient(512, 256), plain = weight_gradient(512, 256);
  batched.batch = 2;
  plain.trans_a = false;
  BOOST_TEST(!o::copies_transposed_a(batched));
  BOOST_TEST(!o::copies_transposed_a(plain));
#endif
}

BOOST_AUTO_TEST_CASE(without_avx512_bf16_gemm_falls_back_to_f32, *ut::precondition(onednn_is_built) *
                                                                     ut::precondition(isa_limited)) {
#if MNEMO_WITH_ONEDNN
  Rng rng(2);
  const Tensor a = Tensor::randn({32, 64}, rng), b = Tensor::randn({48, 64}, rng);
  const Tensor want = product(a, b);
  kernels::onednn::set_bf16_matmul(true);
  const Tensor got = product(a, b);
  BOOST_TEST(!kernels::onednn::bf16_matmul());
  BOOST_TEST(got.to_vector() == want.to_vector());
#endif
}

BOOST_AUTO_TEST_SUITE_END()
