// The oneDNN backend's switches: bf16 matmuls stay close to f32, and where the CPU cannot
// run them (ONEDNN_MAX_CPU_ISA=AVX2 stands in for such a CPU in the onednn_avx2 test)
// the first GEMM warns once, switches bf16 off and returns exact f32 results. Without
// AVX-512 a transposed left operand is copied to a plain layout for the shapes where that
// pays (the products themselves are checked in backends_agree). Without oneDNN, or without
// the CPU the case needs, a case is skipped by its precondition (and a run of skipped cases
// only exits 77: meson's SKIP).
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdlib>

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

// The product itself, copied or in place, is checked in backends_agree
// (gemm_transposed_a_copied_or_in_place); here, that 389 x 77 falls where 512 x 256 does.
BOOST_AUTO_TEST_CASE(transposed_a_rule_covers_the_agreement_shape, *ut::precondition(onednn_is_built)) {
#if MNEMO_WITH_ONEDNN
  kernels::onednn::set_transposed_a(kernels::onednn::TransposedA::automatic);
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
