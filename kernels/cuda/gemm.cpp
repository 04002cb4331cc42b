// GEMM on cuBLAS. mnemo's matrices are row-major and cuBLAS's column-major, so C = op(A) op(B)
// is computed as C^T = op(B)^T op(A)^T: the same memory, B passed first, M and N swapped.
// The precision (runtime.h) picks cuBLAS's compute type: exact f32, TF32 or bf16 tensor
// cores, always with f32 inputs, accumulation and output.
#include <cublas_v2.h>

#include <stdexcept>
#include <string>

#include "kernels/cuda/check.h"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/runtime.h"

namespace mnemo::kernels::cuda {
namespace {

cublasComputeType_t compute_type() {
  switch (matmul_precision()) {
    case MatmulPrecision::tf32:
      return CUBLAS_COMPUTE_32F_FAST_TF32;
    case MatmulPrecision::bf16:
      return CUBLAS_COMPUTE_32F_FAST_16BF;
    case MatmulPrecision::f32:
      break;
  }
  return CUBLAS_COMPUTE_32F;
}

void check(cublasStatus_t s, const GemmDesc& d) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw std::runtime_error("[gemm] cuBLAS status " + std::to_string(int(s)) + " for M=" + std::to_string(d.M) + " N=" +
                           std::to_string(d.N) + " K=" + std::to_string(d.K) + " batch=" + std::to_string(d.batch));
}

}  // namespace

void gemm(const GemmDesc& d, const float* a, const float* b, float* c) {
  if (d.M == 0 || d.N == 0 || d.batch == 0) return;
  auto handle = static_cast<cublasHandle_t>(cublas_handle());
  const float alpha = float(d.alpha), beta = float(d.beta);
  const cublasOperation_t op_b = d.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, op_a = d.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasComputeType_t compute = compute_type();
  // Batches that share one C add into it in order: one call each, as the reference does.
  const bool shared_c = d.batch > 1 && d.stride_c == 0;
  const int64_t calls = shared_c ? d.batch : 1, per_call = shared_c ? 1 : d.batch;
  for (int64_t m = 0; m < calls; ++m)
    check(cublasGemmStridedBatchedEx(handle, op_b, op_a, int(d.N), int(d.M), int(d.K), &alpha, b + m * d.stride_b,
                                     CUDA_R_32F, int(d.ldb), d.stride_b, a + m * d.stride_a, CUDA_R_32F, int(d.lda),
                                     d.stride_a, &beta, c, CUDA_R_32F, int(d.ldc), d.stride_c, int(per_call), compute,
                                     CUBLAS_GEMM_DEFAULT),
          d);
}

}  // namespace mnemo::kernels::cuda
