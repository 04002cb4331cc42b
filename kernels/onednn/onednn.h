// The oneDNN backend's kernels (same signatures as the reference) and its switches.
#pragma once

#include <string>

#include "kernels/kernels.h"

namespace mnemo::kernels::onednn {

void gemm(const GemmDesc& d, const float* a, const float* b, float* c);

// bf16 inputs with f32 accumulation for every f32 GEMM; off by default. Setting it (either
// way) drops the weights' kept bf16 copies.
void set_bf16_matmul(bool on);
bool bf16_matmul();
uint64_t bf16_weight_conversions();  // weight copies made so far (kernels/precision.h)
// A left operand stored transposed (a weight gradient, X^T dY) is copied to a plain layout
// first where oneDNN 2.6's own transposed path runs at about half speed: without AVX-512,
// M >= 384 and M N < 2^19 (docs/BENCHMARKS.md, "Weight gradients on AVX2"). f32, unbatched
// products only. Tests force either way; `automatic` is the default.
enum class TransposedA { automatic, copy, in_place };
void set_transposed_a(TransposedA mode);
bool copies_transposed_a(const GemmDesc& d);  // what gemm() does with d under the current mode

// Why this CPU cannot build a bf16 matmul primitive ("" when it can); asked once.
std::string bf16_unavailable();

}  // namespace mnemo::kernels::onednn
