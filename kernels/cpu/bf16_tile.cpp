// bf16 tile products (bf16_tile.h): a 4 x 64 block of C in 16 zmm accumulators, each
// loaded pair-row of B feeding four vdpbf16ps (the loops fully unrolled, or GCC keeps the
// accumulators in memory and stores them every step). Compiled for AVX512-BF16 through target
// attributes, so the rest of the library keeps the build's own -march; callers ask
// bf16_tiles_supported() first. Ragged column edges use masked loads and stores.
#include "kernels/cpu/bf16_tile.h"

#include <immintrin.h>

#include <bit>

#define MNEMO_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

namespace mnemo::kernels::cpu {
namespace {

// Round to nearest even, as vcvtne2ps2bf16 does; a NaN stays a (quiet) NaN.
inline uint16_t to_bf16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  return (u & 0x7FFFFFFFu) > 0x7F800000u ? uint16_t((u >> 16) | 0x40u) : uint16_t(rounded);
}
inline bf16x2 pair(float lo, float hi) { return bf16x2(to_bf16(lo)) | (bf16x2(to_bf16(hi)) << 16); }

inline __mmask16 first(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

// Rows [0, MR) x columns [0, 16 NV) of C, the last vector cut to `last`.
template <int MR, int NV>
MNEMO_BF16_TARGET void micro(int64_t Kp, const bf16x2* A, int64_t a_row, int64_t a_pair, const bf16x2* B,
                             int64_t ldb, float* C, int64_t ldc, bool accumulate, __mmask16 last) {
  __m512 c[MR][NV];
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      c[r][v] = accumulate ? _mm512_maskz_loadu_ps(v == NV - 1 ? last : 0xFFFF, C + r * ldc + 16 * v)
                           : _mm512_setzero_ps();
  for (int64_t p = 0; p < Kp; ++p) {
    __m512i b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = _mm512_maskz_loadu_epi32(v == NV - 1 ? last : 0xFFFF, B + p * ldb + 16 * v);
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) {
      const __m512i a = _mm512_set1_epi32(int(A[r * a_row + p * a_pair]));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) c[r][v] = _mm512_dpbf16_ps(c[r][v], __m512bh(a), __m512bh(b[v]));
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(C + r * ldc + 16 * v, v == NV - 1 ? last : 0xFFFF, c[r][v]);
}

template <int MR>
MNEMO_BF16_TARGET void row_block(int64_t N, int64_t Kp, const bf16x2* A, int64_t a_row, int64_t a_pair, const bf16x2* B, int64_t ldb,
                                 float* C, int64_t ldc, bool accumulate) {
  int64_t j = 0;
  for (; j + 64 <= N; j += 64) micro<MR, 4>(Kp, A, a_row, a_pair, B + j, ldb, C + j, ldc, accumulate, 0xFFFF);
  const int64_t rest = N - j;
  if (rest <= 0) return;
  const __mmask16 last = first(rest - (rest - 1) / 16 * 16);
  switch ((rest + 15) / 16) {
    case 1: return micro<MR, 1>(Kp, A, a_row, a_pair, B + j, ldb, C + j, ldc, accumulate, last);
    case 2: return micro<MR, 2>(Kp, A, a_row, a_pair, B + j, ldb, C + j, ldc, accumulate, last);
    default: return micro<MR, 3>(Kp, A, a_row, a_pair, B + j, ldb, C + j, ldc, accumulate, last);
  }
}

}  // namespace

bool bf16_tiles_supported() {
  static const bool yes = __builtin_cpu_supports("avx512bf16");
  return yes;
}

MNEMO_BF16_TARGET void tile_gemm_bf16(int64_t M, int64_t N, int64_t Kp, const bf16x2* A, int64_t a_row,
                                      int64_t a_pair, const bf16x2* B, int64_t ldb, float* C, int64_t ldc,
                                      bool accumulate) {
  int64_t i = 0;
  for (; i + 4 <= M; i += 4) row_block<4>(N, Kp, A + i * a_row, a_row, a_pair, B, ldb, C + i * ldc, ldc, accumulate);
  switch (M - i) {
    case 1: return row_block<1>(N, Kp, A + i * a_row, a_row, a_pair, B, ldb, C + i * ldc, ldc, accumulate);
    case 2: return row_block<2>(N, Kp, A + i * a_row, a_row, a_pair, B, ldb, C + i * ldc, ldc, accumulate);
    case 3: return row_block<3>(N, Kp, A + i * a_row, a_row, a_pair, B, ldb, C + i * ldc, ldc, accumulate);
    default: return;
  }
}

// Per-head packs (K and V panels): O(T d) against the O(T^2 d) products, so plain loops.
void pack_col_pairs(int64_t R, int64_t C, const float* X, int64_t ldx, bf16x2* out, int64_t ldo) {
  for (int64_t p = 0; 2 * p < C; ++p) {
    const bool whole = 2 * p + 1 < C;
    for (int64_t r = 0; r < R; ++r) {
      const float* x = X + r * ldx + 2 * p;
      out[p * ldo + r] = pair(x[0], whole ? x[1] : 0.0f);
    }
  }
}

// Per-tile packs of Q, dO, P and dS: a row of 32 floats is 16 pairs in one conversion.
MNEMO_BF16_TARGET void pack_rows(int64_t R, int64_t C, const float* X, int64_t ldx, bf16x2* out, int64_t ldo) {
  for (int64_t r = 0; r < R; ++r) {
    const float* x = X + r * ldx;
    for (int64_t c = 0; c < C; c += 32) {
      const __m512 lo = _mm512_maskz_loadu_ps(first(C - c), x + c);
      const __m512 hi = C - c > 16 ? _mm512_maskz_loadu_ps(first(C - c - 16), x + c + 16) : _mm512_setzero_ps();
      const __m512i both = __m512i(_mm512_cvtne2ps_pbh(hi, lo));
      _mm512_mask_storeu_epi32(out + r * ldo + c / 2, first((C - c + 1) / 2), both);
    }
  }
}

// Per-tile packs of P and dS: two rows converted and interleaved 16 columns at a time.
MNEMO_BF16_TARGET void pack_row_pairs(int64_t R, int64_t C, const float* X, int64_t ldx, bf16x2* out, int64_t ldo) {
  // cvtne2ps_pbh(hi, lo) puts lo's 16 values in words 0-15 and hi's in 16-31: interleave them
  const __m512i zip = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                       21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  for (int64_t p = 0; 2 * p < R; ++p) {
    const float* x0 = X + 2 * p * ldx;
    const float* x1 = 2 * p + 1 < R ? x0 + ldx : nullptr;
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 m = first(C - c);
      const __m512 lo = _mm512_maskz_loadu_ps(m, x0 + c);
      const __m512 hi = x1 ? _mm512_maskz_loadu_ps(m, x1 + c) : _mm512_setzero_ps();
      const __m512i both = __m512i(_mm512_cvtne2ps_pbh(hi, lo));
      _mm512_mask_storeu_epi32(out + p * ldo + c, m, _mm512_permutexvar_epi16(zip, both));
    }
  }
}

}  // namespace mnemo::kernels::cpu
