// CPU GEMM through Eigen maps (row-major, leading dimensions honoured). Small
// batched products run one matrix per thread; a large one is cut into bands of C, one per
// thread; batches of tiny ones (hyper-connection mixing: 4 x 4 by 4 x 256 per token) take
// direct loops.
// Eigen's own GEMM threading is off: its threads wait for each other's packed blocks in
// spin loops (Eigen/src/Core/products/GeneralMatrixMatrix.h, `while(info[i].sync!=k) {}`),
// which OMP_WAIT_POLICY does not reach, and it threads products from 50k multiply-adds up.
// On a loaded machine a spinning thread burns the time slices its descheduled partner
// needs; inside our one-thread team it also started fresh threads per product (a nested team).
// Without oneDNN, 2 threads did not finish in 120 s a test 1 thread runs in 4 s (docs/CUDA.md).
// The bands below run in a top-level region: pooled threads that sleep under OMP_WAIT_POLICY=PASSIVE.
#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Core>
#include <algorithm>
#include <omp.h>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"

namespace mnemo::kernels::cpu {
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

// C = alpha op(A) op(B) + beta C for one tiny matrix, looping so the innermost index walks
// contiguous memory: rows of B when B is not transposed (an axpy per (i, k)), else rows of A
// and B along K (a dot per (i, j)), else columns of C (trans_a and trans_b).
template <class T>
void tiny(const GemmDesc& d, const T* __restrict a, const T* __restrict b, T* __restrict c) {
  const T alpha = T(d.alpha), beta = T(d.beta);
  const int64_t M = d.M, N = d.N, K = d.K, lda = d.lda, ldb = d.ldb, ldc = d.ldc;
  auto a_at = [&](int64_t i, int64_t k) { return d.trans_a ? a[k * lda + i] : a[i * lda + k]; };
  for (int64_t i = 0; i < M; ++i) {
    T* ci = c + i * ldc;
    if (beta == T(0)) std::fill(ci, ci + N, T(0));
    else if (beta != T(1))
      for (int64_t j = 0; j < N; ++j) ci[j] *= beta;
  }
  if (!d.trans_b) {
    for (int64_t i = 0; i < M; ++i) {
      T* __restrict ci = c + i * ldc;
      for (int64_t k = 0; k < K; ++k) {
        const T s = alpha * a_at(i, k);
        const T* __restrict bk = b + k * ldb;
#pragma omp simd
        for (int64_t j = 0; j < N; ++j) ci[j] += s * bk[j];
      }
    }
  } else if (!d.trans_a) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        const T* __restrict ai = a + i * lda;
        const T* __restrict bj = b + j * ldb;
        T acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t k = 0; k < K; ++k) acc += ai[k] * bj[k];
        c[i * ldc + j] += alpha * acc;
      }
  } else {
    for (int64_t k = 0; k < K; ++k) {
      const T* __restrict ak = a + k * lda;
      for (int64_t j = 0; j < N; ++j) {
        const T s = alpha * b[j * ldb + k];
        for (int64_t i = 0; i < M; ++i) c[i * ldc + j] += s * ak[i];
      }
    }
  }
}

// One product over the threads, each taking a band of C (rows, or columns when C is wide
// and short) with the whole of the other operand; bands of at least kBandFlops, so that a
// thread's work outweighs a parallel region's start and barrier.
constexpr double kBandFlops = 4e6;

template <class T>
void banded(const GemmDesc& d, const T* a, const T* b, T* c) {
  const double flops = 2.0 * double(d.M) * double(d.N) * double(d.K);
  const bool by_rows = d.M >= d.N;
  const int64_t extent = by_rows ? d.M : d.N;
  const int64_t bands = std::min<int64_t>({int64_t(omp_get_max_threads()), int64_t(flops / kBandFlops), extent / 8});
  if (bands <= 1 || omp_in_parallel()) return one(d, a, b, c);
#pragma omp parallel for schedule(static) num_threads(int(bands))
  for (int64_t t = 0; t < bands; ++t) {
    const int64_t first = extent * t / bands, n = extent * (t + 1) / bands - first;
    GemmDesc part = d;
    if (by_rows) {
      part.M = n;
      one(part, d.trans_a ? a + first : a + first * d.lda, b, c + first * d.ldc);
    } else {
      part.N = n;
      one(part, a, d.trans_b ? b + first * d.ldb : b + first, c + first);
    }
  }
}

}  // namespace

bool small_batched(const GemmDesc& d) {
  const int small = int(d.M <= kSmallGemm) + int(d.N <= kSmallGemm) + int(d.K <= kSmallGemm);
  return d.batch > 1 && d.stride_c != 0 && small >= 2;
}

template <class T>
void gemm(const GemmDesc& d, const T* a, const T* b, T* c) {
  if (d.M == 0 || d.N == 0) return;
  if (small_batched(d)) {
    const double total = double(d.batch) * double(d.M) * double(d.N) * double(std::max<int64_t>(d.K, 1));
#pragma omp parallel for schedule(static) if (total > double(kParallelMin))
    for (int64_t i = 0; i < d.batch; ++i) tiny(d, a + i * d.stride_a, b + i * d.stride_b, c + i * d.stride_c);
    return;
  }
  const double flops = 2.0 * double(d.M) * double(d.N) * double(d.K);
  if (d.batch > 1 && d.stride_c != 0 && flops < kBandFlops) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < d.batch; ++i) one(d, a + i * d.stride_a, b + i * d.stride_b, c + i * d.stride_c);
    return;
  }
  for (int64_t i = 0; i < d.batch; ++i)  // in order: a shared C (stride 0) sums the batch as the reference does
    banded(d, a + i * d.stride_a, b + i * d.stride_b, c + i * d.stride_c);
}

template void gemm<float>(const GemmDesc&, const float*, const float*, float*);

}  // namespace mnemo::kernels::cpu
