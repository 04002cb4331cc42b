// Small vectorisable building blocks for the fused CPU kernels: an exp that the compiler
// turns into SIMD code, and a register-blocked GEMM for tiles that live in L1. Written with
// GCC vector extensions: AVX-512 with -march=native, narrower vectors elsewhere.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace mnemo::kernels::cpu {

// exp(x) for float with |rel err| < 2e-7 (Cephes' polynomial), 0 for x < -87.3 (and -inf),
// branch-free so `#pragma omp simd` loops vectorise. Double precision uses std::exp.
inline float fast_exp(float x) {
  const float lo = -87.3f, hi = 88.7f;
  const bool underflow = x < lo;
  x = x < lo ? lo : (x > hi ? hi : x);
  // round to nearest by the 1.5 * 2^23 trick: floorf would block vectorisation in GCC 12
  const float shifted = x * 1.44269504088896341f + 12582912.0f;
  const float n = shifted - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // n as an integer read from the shifted float's low bits, not converted: converting a NaN
  // (a diverging run) to int is undefined (UBSan, found by fuzz_checkpoint), and a select
  // before the conversion cost ~10% of attention forward. p carries the NaN out.
  const int32_t ni = std::bit_cast<int32_t>(shifted) - std::bit_cast<int32_t>(12582912.0f);
  const float scale = std::bit_cast<float>(int32_t(uint32_t(ni + 127) << 23));  // 2^n
  return underflow ? 0.0f : p * scale;
}
inline double fast_exp(double x) { return std::exp(x); }

// erf for float, Abramowitz & Stegun 7.1.26 (|abs err| < 1.5e-7) on top of fast_exp,
// branch-free for SIMD loops. Double precision uses std::erf.
inline float fast_erf(float x) {
  const float ax = x < 0 ? -x : x;
  const float t = 1.0f / (1.0f + 0.3275911f * ax);
  const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  const float e = 1.0f - poly * fast_exp(-ax * ax);
  return x < 0 ? -e : e;
}
inline double fast_erf(double x) { return std::erf(x); }

// tanh for float (Cephes tanhf: an odd polynomial below 0.625, 1 - 2/(e^2|x| + 1) above),
// branch-free for SIMD loops. Double precision uses std::tanh.
inline float fast_tanh(float x) {
  const float ax = x < 0 ? -x : x, z = x * x;
  const float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                        1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
  const float big = 1.0f - 2.0f / (fast_exp(2.0f * ax) + 1.0f);
  return ax < 0.625f ? small : (x < 0 ? -big : big);
}
inline double fast_tanh(double x) { return std::tanh(x); }

// GELU (exact, erf form) and its derivative: Phi(x) + x phi(x).
template <class T>
inline T gelu_of(T x) {
  return T(0.5) * x * (T(1) + fast_erf(x * T(0.70710678118654752440)));
}
template <class T>
inline T gelu_grad(T x) {
  const T cdf = T(0.5) * (T(1) + fast_erf(x * T(0.70710678118654752440)));
  return cdf + x * T(0.39894228040143267794) * fast_exp(T(-0.5) * x * x);
}

// y[i] = exp(x[i] - shift) for n elements; returns their sum.
template <class T>
inline T exp_shifted_sum(T* y, const T* x, int64_t n, T shift) {  // y may be x
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) {
    const T e = fast_exp(x[i] - shift);
    y[i] = e;
    sum += e;
  }
  return sum;
}

// C (M x N, row stride ldc) = or += op(A) (M x K) B (K x N); rows of B contiguous.
// op(A) = A (row stride lda) or, with trans_a, A^T for A stored (K x M) with row stride lda.
template <class T>
void tile_gemm(int64_t M, int64_t N, int64_t K, const T* __restrict A, int64_t lda, bool trans_a,
               const T* __restrict B, int64_t ldb, T* __restrict C, int64_t ldc, bool accumulate);

// dst (cols x rows) = src (rows x cols, row stride ld)^T
template <class T>
inline void transpose(int64_t rows, int64_t cols, const T* __restrict src, int64_t ld, T* __restrict dst) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * ld + c];
}

}  // namespace mnemo::kernels::cpu
