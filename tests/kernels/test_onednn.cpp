// The oneDNN backend's switches: bf16 matmuls stay close to f32, and where the CPU cannot
// run them (ONEDNN_MAX_CPU_ISA=AVX2 stands in for such a CPU in the bf16_fallback test)
// the first GEMM warns once, switches bf16 off and returns exact f32 results.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdlib>

#include "autograd/ops/ops.h"
#include "kernels/kernels.h"
#include "mnemo_config.h"
#if MNEMO_WITH_ONEDNN
#include "kernels/onednn/onednn.h"
#endif

using namespace mnemo;

namespace {

Tensor product(const Tensor& a, const Tensor& b) {
  Tape t;
  return matmul(t.constant(a), t.constant(b), {.trans_b = true}).value();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(onednn)

BOOST_AUTO_TEST_CASE(backend_matches_build) {
  kernels::init();
  BOOST_TEST(kernels::onednn_built() == bool(MNEMO_WITH_ONEDNN));
  BOOST_TEST(kernels::gemm.filled[int(kernels::Backend::onednn)] == bool(MNEMO_WITH_ONEDNN));
}

#if MNEMO_WITH_ONEDNN
BOOST_AUTO_TEST_CASE(bf16_matmul_is_close_to_f32) {
  if (std::getenv("ONEDNN_MAX_CPU_ISA")) return;  // the fallback test covers that case
  Rng rng(1);
  const Tensor a = Tensor::randn({64, 256}, rng), b = Tensor::randn({96, 256}, rng);
  const Tensor want = product(a, b);
  kernels::onednn::set_bf16_matmul(true);
  const Tensor got = product(a, b);
  const bool still_bf16 = kernels::onednn::bf16_matmul();  // false on a CPU without avx512_bf16
  kernels::onednn::set_bf16_matmul(false);
  const auto w = want.to_vector(), g = got.to_vector();
  double worst = 0, scale = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    worst = std::max(worst, std::abs(w[i] - g[i]));
    scale = std::max(scale, std::abs(w[i]));
  }
  BOOST_TEST_MESSAGE("bf16 path " << (still_bf16 ? "on" : "fell back") << ": max abs diff " << worst << " of " << scale);
  BOOST_TEST(worst < 0.03 * scale);  // 8-bit mantissas, f32 accumulation
  if (still_bf16) BOOST_TEST(worst > 0.0);  // it really ran in bf16
}
#endif

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(bf16_fallback)

BOOST_AUTO_TEST_CASE(without_avx512_bf16_gemm_falls_back_to_f32) {
#if MNEMO_WITH_ONEDNN
  BOOST_REQUIRE_MESSAGE(std::getenv("ONEDNN_MAX_CPU_ISA"), "run through meson: it sets ONEDNN_MAX_CPU_ISA=AVX2");
  Rng rng(2);
  const Tensor a = Tensor::randn({32, 64}, rng), b = Tensor::randn({48, 64}, rng);
  const Tensor want = product(a, b);
  kernels::onednn::set_bf16_matmul(true);
  const Tensor got = product(a, b);
  BOOST_TEST(!kernels::onednn::bf16_matmul());
  BOOST_TEST(got.to_vector() == want.to_vector());
#else
  BOOST_TEST(!kernels::onednn_built());
#endif
}

BOOST_AUTO_TEST_SUITE_END()
