// A batch whose rows repeat a random period-3 pattern: past the first period every token is
// predictable in context, so a short training run must drive the loss down.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/random.h"
#include "data/streams.h"

namespace mnemo::test {

inline data::Batch periodic_batch(uint64_t seed, int64_t B, int64_t S, int64_t T, int64_t V) {
  Rng rng(seed);
  std::vector<int32_t> rows;
  for (int64_t b = 0; b < B; ++b) {
    const int32_t p[3] = {int32_t(rng.randint(V)), int32_t(rng.randint(V)), int32_t(rng.randint(V))};
    for (int64_t i = 0; i < S * T + 1; ++i) rows.push_back(p[i % 3]);
  }
  return data::make_batch(rows, B, S, T);
}

}  // namespace mnemo::test
