// The fast CPU backend (float): loops written for the vectoriser, fused kernels (tiled
// attention with an online softmax, hyper-connection mixing, GEGLU), OpenMP, Eigen maps for
// GEMM. Declared here, explicitly instantiated for float in each family's .cpp, registered
// in register.cpp, and tested against the reference backend (kernels/reference/).
#pragma once

#include "kernels/kernels.h"

namespace mnemo::kernels::cpu {

#include "kernels/backend_functions.inc"  // every slot: elementwise, reduce, matmul, shape, random,
                                          // softmax, norm, hyper, attention, optim .cpp

// matmul.cpp: many tiny products (two of M, N, K at most kSmallGemm): one direct loop nest
// per matrix, vectorised along whichever operand is contiguous. gemm() takes this path
// itself; the oneDNN backend hands such batches here (its per-matrix dispatch costs more
// than the math).
inline constexpr int64_t kSmallGemm = 16;
bool small_batched(const GemmDesc& d);

// shape.cpp: dst (cols x rows) = src (rows x cols, row stride ld)^T. 8 x 8 tiles inside
// 64 x 64 blocks: a walk down a column of a row-major matrix whose stride is a power of two
// lands every row in one cache set, so neither side touches more than 8 rows at a time.
// Parallel over blocks.
void transpose_blocked(int64_t rows, int64_t cols, const float* src, int64_t ld, float* dst);

}  // namespace mnemo::kernels::cpu
