// Reference GEMM through Eigen maps (row-major, leading dimensions honoured). Small
// batched products run one matrix per thread; large ones let Eigen thread each product.
#include <Eigen/Core>
#include <omp.h>

#include "kernels/reference/common.h"
#include "kernels/reference/reference.h"

namespace mnemo::kernels::ref {
namespace {

template <class T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using CMap = Eigen::Map<const Mat<T>, 0, Eigen::OuterStride<>>;
template <class T>
using MMap = Eigen::Map<Mat<T>, 0, Eigen::OuterStride<>>;

template <class T, class A, class B>
void product(MMap<T>& c, const A& a, const B& b, T alpha, T beta) {
  if (beta == T(0)) {
    c.noalias() = alpha * (a * b);
  } else {
    if (beta != T(1)) c *= beta;
    c.noalias() += alpha * (a * b);
  }
}

template <class T>
void one(const GemmDesc& d, const T* a, const T* b, T* c) {
  const T alpha = T(d.alpha), beta = T(d.beta);
  MMap<T> C(c, d.M, d.N, Eigen::OuterStride<>(d.ldc));
  if (d.K == 0) {  // an empty product: C = beta C
    if (beta == T(0)) C.setZero(); else C *= beta;
    return;
  }
  const CMap<T> A(a, d.trans_a ? d.K : d.M, d.trans_a ? d.M : d.K, Eigen::OuterStride<>(d.lda));
  const CMap<T> B(b, d.trans_b ? d.N : d.K, d.trans_b ? d.K : d.N, Eigen::OuterStride<>(d.ldb));
  if (!d.trans_a && !d.trans_b) product(C, A, B, alpha, beta);
  else if (!d.trans_a && d.trans_b) product(C, A, B.transpose(), alpha, beta);
  else if (d.trans_a && !d.trans_b) product(C, A.transpose(), B, alpha, beta);
  else product(C, A.transpose(), B.transpose(), alpha, beta);
}

}  // namespace

template <class T>
void gemm(const GemmDesc& d, const T* a, const T* b, T* c) {
  if (d.M == 0 || d.N == 0) return;
  const double flops = 2.0 * double(d.M) * double(d.N) * double(d.K);
  const bool per_thread = d.batch > 1 && d.stride_c != 0 && flops < 4e6;
#pragma omp parallel for schedule(static) if (per_thread)
  for (int64_t i = 0; i < d.batch; ++i)
    one(d, a + i * d.stride_a, b + i * d.stride_b, c + i * d.stride_c);
}

template void gemm<float>(const GemmDesc&, const float*, const float*, float*);
template void gemm<double>(const GemmDesc&, const double*, const double*, double*);

}  // namespace mnemo::kernels::ref
