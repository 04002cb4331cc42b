// tile_gemm: kRows rows of C at a time, NV vectors wide, accumulated in registers over the
// whole K loop, so every loaded row of B feeds kRows FMAs. The block is sized to the
// register file: 4 x 4 zmm accumulators (4 x 64 floats) of AVX-512's 32 registers, 6 x 2 ymm
// (6 x 16) of AVX2's 16, enough independent sums to cover the FMA latency on both pipes. A 4 x 64
// block written for AVX-512 and compiled for AVX2 needs 32 ymm accumulators and spilled on every
// FMA (attention forward at 5% of sgemm on a Zen 3); 6 rows gave attention forward+backward
// about 12% over 4 there. Leftover rows go 4 and then 1 at a time; odd column edges take the
// plain loop.
#include "kernels/cpu/vec.h"

namespace mnemo::kernels::cpu {
namespace {

#if defined(__AVX512F__)
constexpr int kLanes = 16, kWide = 4, kRows = 4;
#elif defined(__AVX__)
constexpr int kLanes = 8, kWide = 2, kRows = 6;
#else
constexpr int kLanes = 4, kWide = 2, kRows = 4;
#endif
typedef float vf __attribute__((vector_size(kLanes * sizeof(float))));

inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }

// TA: A is stored transposed, element (r, k) at A[k * lda + r].
template <int MR, int NV, bool TA>
void micro(int64_t K, const float* __restrict A, int64_t lda, const float* __restrict B, int64_t ldb,
           float* __restrict C, int64_t ldc, bool accumulate) {
  vf c[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) c[r][v] = accumulate ? load(C + r * ldc + kLanes * v) : vf{};
  for (int64_t k = 0; k < K; ++k) {
    vf b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = load(B + k * ldb + kLanes * v);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const float a = TA ? A[k * lda + r] : A[r * lda + k];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) c[r][v] += a * b[v];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) store(C + r * ldc + kLanes * v, c[r][v]);
}

template <class T>
void plain(int64_t M, int64_t N, int64_t K, const T* __restrict A, int64_t lda, bool ta, const T* __restrict B,
           int64_t ldb, T* __restrict C, int64_t ldc, bool accumulate) {
  for (int64_t i = 0; i < M; ++i) {
    T* c = C + i * ldc;
    if (!accumulate)
      for (int64_t j = 0; j < N; ++j) c[j] = 0;
    for (int64_t k = 0; k < K; ++k) {
      const T a = ta ? A[k * lda + i] : A[i * lda + k];
      const T* b = B + k * ldb;
#pragma omp simd
      for (int64_t j = 0; j < N; ++j) c[j] += a * b[j];
    }
  }
}

template <int MR, bool TA>
void rows(int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc,
          bool accumulate) {
  int64_t j = 0;
  for (; j + kWide * kLanes <= N; j += kWide * kLanes)
    micro<MR, kWide, TA>(K, A, lda, B + j, ldb, C + j, ldc, accumulate);
  for (; j + kLanes <= N; j += kLanes) micro<MR, 1, TA>(K, A, lda, B + j, ldb, C + j, ldc, accumulate);
  if (j < N) plain<float>(MR, N - j, K, A, lda, TA, B + j, ldb, C + j, ldc, accumulate);
}

template <bool TA>
void all_rows(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
              int64_t ldc, bool accumulate) {
  const int64_t row_step = TA ? 1 : lda;  // distance in A between consecutive rows of op(A)
  int64_t i = 0;
  for (; i + kRows <= M; i += kRows) rows<kRows, TA>(N, K, A + i * row_step, lda, B, ldb, C + i * ldc, ldc, accumulate);
  if constexpr (kRows != 4)
    for (; i + 4 <= M; i += 4) rows<4, TA>(N, K, A + i * row_step, lda, B, ldb, C + i * ldc, ldc, accumulate);
  for (; i < M; ++i) rows<1, TA>(N, K, A + i * row_step, lda, B, ldb, C + i * ldc, ldc, accumulate);
}

}  // namespace

template <>
void tile_gemm<float>(int64_t M, int64_t N, int64_t K, const float* __restrict A, int64_t lda, bool trans_a,
                      const float* __restrict B, int64_t ldb, float* __restrict C, int64_t ldc, bool accumulate) {
  if (trans_a) all_rows<true>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
  else all_rows<false>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

}  // namespace mnemo::kernels::cpu
