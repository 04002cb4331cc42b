// The small BRT the BRT tests share: vocab 11, D 16, 2 heads of 8, T 8 in blocks of 4,
// 3 states, layer 2 of 2 writes.
#pragma once

#include "architectures/brt.h"

namespace mnemo::test {

inline arch::BrtConfig brt_small() {
  return {.vocab = 11, .dim = 16, .depth = 2, .heads = 2, .seq_len = 8, .block_width = 4, .num_state_vectors = 3,
          .recurrent_layers = {2}, .ff_mult = 2};
}

}  // namespace mnemo::test
