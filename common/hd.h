// MNEMO_HD marks a function that both the CPU build and CUDA device code call: the per-element
// and per-tile math of the CUDA kernels (kernels/cuda/math.h), the attention mask rules and the
// dropout hash. Here in common/ because that hash lives here too.
// The CPU build compiles these as plain inline functions and tests them against the reference.
#pragma once

#if defined(__CUDACC__)
#define MNEMO_HD __host__ __device__ inline
#else
#define MNEMO_HD inline
#endif
