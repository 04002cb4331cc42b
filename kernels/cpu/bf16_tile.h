// bf16 tile products for the fused attention under train.precision: bf16 (AVX512-BF16's
// vdpbf16ps: a pair of bf16 products summed into each f32 lane, f32 accumulation).
// Operands are packed in pairs along the summed dimension: one 32-bit word holds two bf16,
// the even index in the low half. Not a general GEMM: the attention kernel packs its tiles.
#pragma once

#include <cstdint>

namespace mnemo::kernels::cpu {

using bf16x2 = uint32_t;

// Whether this CPU runs vdpbf16ps (asked once); without it the attention stays f32.
bool bf16_tiles_supported();

// Packing, rounding to nearest even (NaN stays NaN); an odd count pads a zero half.
// rows:            out[r * ldo + p] = (X[r][2p], X[r][2p+1]),  r < R, p < ceil(C/2)
void pack_rows(int64_t R, int64_t C, const float* X, int64_t ldx, bf16x2* out, int64_t ldo);
// pairs of columns: out[p * ldo + r] = (X[r][2p], X[r][2p+1]),  r < R, p < ceil(C/2)
void pack_col_pairs(int64_t R, int64_t C, const float* X, int64_t ldx, bf16x2* out, int64_t ldo);
// pairs of rows:    out[p * ldo + c] = (X[2p][c], X[2p+1][c]),  p < ceil(R/2), c < C
void pack_row_pairs(int64_t R, int64_t C, const float* X, int64_t ldx, bf16x2* out, int64_t ldo);

// C (M x N, row stride ldc) = or += A B, summed over Kp pairs: A's pair (r, p) at
// A[r * a_row + p * a_pair] (pack_rows: a_row = ldo, a_pair = 1; pack_row_pairs of A^T:
// a_row = 1, a_pair = ldo), B's pair (p, n) at B[p * ldb + n].
void tile_gemm_bf16(int64_t M, int64_t N, int64_t Kp, const bf16x2* A, int64_t a_row, int64_t a_pair,
                    const bf16x2* B, int64_t ldb, float* C, int64_t ldc, bool accumulate);

}  // namespace mnemo::kernels::cpu
