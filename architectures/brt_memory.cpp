#include "architectures/brt_memory.h"

#include "layers/memory_ops.h"

namespace mnemo::arch {

BrtMemory brt_push_memory(Var xl, Var xlc, Var kv, int64_t W, const nn::Compressor* compress) {
  MNEMO_CHECK(kv.defined() && kv.rank() == 3, "[brt] expected a block's keys/values (B, W, 2d), got "
                                                  << (kv.defined() ? kv.shape() : Shape{}));
  const nn::FifoResult stage1 = nn::fifo_push(xl, kv, W);  // kept (B, W, 2d), evicted (B, E, 2d)
  BrtMemory out{stage1.kept, xlc};
  if (!compress) return out;
  MNEMO_CHECK(compress->drop_remainder, "[brt] the memory compressor must drop the oldest E mod c slots");
  const Var& evicted = stage1.evicted;
  if (evicted.dim(1) < compress->ratio) return out;   // nothing whole to compress
  Var compressed = (*compress)(evicted);              // (B, E / c, 2d), K and V channels apart
  out.xlc = nn::fifo_push(xlc, compressed, W / 2).kept;
  return out;
}

}  // namespace mnemo::arch
