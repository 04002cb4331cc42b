// Reference GEMM: C = alpha op(A) op(B) + beta C for each matrix of the batch, one dot
// product per element of C, summed in double. beta = 0 means C is not read (it may hold
// NaN). Batches whose C stride is 0 update the one C in batch order.
#include "kernels/reference/loops.h"
#include "kernels/reference/reference.h"

namespace mnemo::kernels::ref {

template <class T>
void gemm(const GemmDesc& d, const T* a, const T* b, T* c) {
  const bool shared_c = d.batch > 1 && d.stride_c == 0;  // then the order matters: no threads
#pragma omp parallel for if (!shared_c && worth_threads(d.batch * d.M * d.N * d.K))
  for (int64_t bm = 0; bm < d.batch * d.M; ++bm) {
    const int64_t m = bm / d.M, i = bm % d.M;
    const T* A = a + m * d.stride_a;
    const T* B = b + m * d.stride_b;
    T* C = c + m * d.stride_c;
    for (int64_t j = 0; j < d.N; ++j) {
      double dot = 0;
      for (int64_t k = 0; k < d.K; ++k) {
        const T aik = d.trans_a ? A[k * d.lda + i] : A[i * d.lda + k];
        const T bkj = d.trans_b ? B[j * d.ldb + k] : B[k * d.ldb + j];
        dot += double(aik) * double(bkj);
      }
      T& cij = C[i * d.ldc + j];
      cij = d.beta == 0 ? T(d.alpha * dot) : T(d.alpha * dot + d.beta * double(cij));
    }
  }
}

template void gemm<float>(const GemmDesc&, const float*, const float*, float*);
template void gemm<double>(const GemmDesc&, const double*, const double*, double*);

}  // namespace mnemo::kernels::ref
