// Counter-based random numbers: a value is a pure function of (seed, counter), so kernels
// on any backend and any thread count draw the same numbers, and so do the tape's dropout
// seeds, the trainer's per-step seeds and the synthetic tasks. SplitMix64 finaliser.
// common/ holds what every folder shares and none owns (header-only, below kernels/): this
// hash is not a kernel, yet kernels need it, so it cannot live above them.
#pragma once

#include <cstdint>

#include "common/hd.h"

namespace mnemo {

MNEMO_HD uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) with 53 random bits.
MNEMO_HD double uniform01(uint64_t seed, uint64_t counter) {
  const uint64_t h = mix64(mix64(seed + 0x9e3779b97f4a7c15ULL) ^ (counter * 0xd1b54a32d192ed03ULL));
  return double(h >> 11) * 0x1.0p-53;
}

}  // namespace mnemo
