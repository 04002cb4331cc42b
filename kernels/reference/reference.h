// The reference backend: the plainest correct loops for every slot, in float and double.
// It is the oracle every other backend is tested against and the kernel gradient checks
// run on, so it is written to be read, not to be fast: no tiling, no SIMD code, no
// online softmax, no fused passes. Explicitly instantiated for float and double in each
// family's .cpp and registered in register.cpp.
#pragma once

#include "kernels/kernels.h"

namespace mnemo::kernels::ref {

#include "kernels/backend_functions.inc"  // every slot: vector, unary, broadcast, reduce, gemm, shape,
                                          // softmax, norm, hyper, attention, optim .cpp

}  // namespace mnemo::kernels::ref
