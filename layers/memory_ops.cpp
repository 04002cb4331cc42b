// FIFO push: all = concat(memory, incoming) on time, evicted = all[:, :e], kept = all[:, e:],
// e = max(M + n - max_len, 0). Only concat and slice, so the gradient is the adjoint copy.
#include "layers/memory_ops.h"

#include <algorithm>

#include "layers/testing.h"

namespace mnemo::nn {

FifoResult fifo_push(Var memory, Var incoming, int64_t max_len) {
  MNEMO_CHECK(incoming.defined() && incoming.rank() == 3,
              "[fifo_push] expected incoming (B, n, D), got " << (incoming.defined() ? incoming.shape() : Shape{}));
  MNEMO_CHECK(max_len >= 0, "[fifo_push] expected max_len >= 0, got " << max_len);
  const bool has_memory = memory.defined() && memory.dim(1) > 0;
  if (memory.defined())
    MNEMO_CHECK(memory.rank() == 3 && memory.dim(0) == incoming.dim(0) && memory.dim(2) == incoming.dim(2),
                "[fifo_push] expected memory (" << incoming.dim(0) << ", M, " << incoming.dim(2) << "), got "
                                                << memory.shape() << " for incoming " << incoming.shape());
  if (has_memory) MNEMO_CHECK(memory.dtype() == incoming.dtype(), "[fifo_push] memory and incoming dtypes differ");
  // An empty memory adds nothing; skipping the concat saves a copy of incoming.
  Var all = has_memory ? concat({memory, incoming}, 1) : incoming;  // (B, M + n, D)
  const int64_t L = all.dim(1), e = std::max<int64_t>(L - max_len, 0);
  return {slice(all, 1, e, L - e), slice(all, 1, 0, e)};
}

FifoTensors fifo_push(const Tensor& memory, const Tensor& incoming, int64_t max_len) {
  MNEMO_CHECK(incoming.defined(), "[fifo_push] expected incoming (B, n, D), got an undefined tensor");
  Tape tape;
  Tape::NoRecord no_record(tape);
  FifoResult r = fifo_push(memory.defined() ? tape.constant(memory) : Var{}, tape.constant(incoming), max_len);
  return {r.kept.value(), r.evicted.value()};
}

using gradcheck::Sample;
MNEMO_GRADCHECK("layers.fifo_push", [](Sample& s) {
  Var memory = s.input({2, 3, 2});
  Var incoming = s.input({2, 2, 2});
  FifoResult r = fifo_push(memory, incoming, 4);  // one slot evicted
  return concat({r.kept, r.evicted}, 1);
});

}  // namespace mnemo::nn
