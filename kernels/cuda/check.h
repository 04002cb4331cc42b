// What the CUDA backend's own files share: error checks that name the call and the CUDA
// error, the run's stream and cuBLAS handle. Included only by kernels/cuda/ sources.
#pragma once

#include <cuda_runtime_api.h>

#include <sstream>
#include <stdexcept>

namespace mnemo::kernels::cuda {

[[noreturn]] inline void fail_cuda(const char* call, cudaError_t e, const char* file, int line) {
  std::ostringstream msg;
  msg << "[cuda] " << call << " failed: " << cudaGetErrorName(e) << " (" << cudaGetErrorString(e) << ") at " << file
      << ":" << line;
  throw std::runtime_error(msg.str());
}

#define MNEMO_CUDA_CHECK(call)                                                                           \
  do {                                                                                                   \
    const cudaError_t mnemo_e_ = (call);                                                                 \
    if (mnemo_e_ != cudaSuccess) ::mnemo::kernels::cuda::fail_cuda(#call, mnemo_e_, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: a bad configuration shows up here, named by the kernel.
#define MNEMO_CUDA_LAUNCHED(name)                                                                       \
  do {                                                                                                  \
    const cudaError_t mnemo_e_ = cudaGetLastError();                                                    \
    if (mnemo_e_ != cudaSuccess) ::mnemo::kernels::cuda::fail_cuda(name, mnemo_e_, __FILE__, __LINE__); \
  } while (0)

cudaStream_t stream();  // created on first use; every kernel and copy of the run goes here
void* cublas_handle();  // cublasHandle_t, bound to stream(), with a fixed workspace

// Blocks for n items at `threads` per block, capped so that grid-stride loops cover the rest.
inline unsigned blocks_for(long long n, int threads) {
  const long long b = (n + threads - 1) / threads;
  return unsigned(b < 1 ? 1 : b > 65535 * 8 ? 65535 * 8 : b);
}

}  // namespace mnemo::kernels::cuda
