// Whole-model gradient checks of the Block-Recurrent Transformer in f64: two segments of two
// blocks each, so gradient flows block to block and segment to segment through the states,
// the XL memories and (with compression) the compressed memory and its conv.
#include <memory>

#include "architectures/brt.h"
#include "autograd/gradcheck/gradcheck.h"

namespace mnemo::arch {
namespace {

using gradcheck::Sample;

// vocab 7, D 8, 2 heads of 4, T 4 in blocks of 2, 2 states; layer 2 writes, layer 1 reads.
BrtConfig tiny() {
  return {.vocab = 7, .dim = 8, .depth = 2, .heads = 2, .seq_len = 4, .block_width = 2, .num_state_vectors = 2,
          .recurrent_layers = {2}, .read_recurrent_layers = {1}, .ff_mult = 1};
}

BlockRecurrentTransformer& checked_model(Sample& s, const BrtConfig& c) {
  return s.once<BlockRecurrentTransformer>(
      [&] {
        nn::Init init(1234, DType::f64);
        return std::make_shared<BlockRecurrentTransformer>(init, c);
      },
      [](BlockRecurrentTransformer& m) { return nn::params(m); });
}

// Two segments; the second reads the first's memory as Vars. Both segments' logits are the
// output, so every parameter (the conv included) is reached.
Var two_segments(Sample& s, const BrtConfig& c, int64_t B) {
  BlockRecurrentTransformer& m = checked_model(s, c);
  const Tensor x1 = s.indices({B, 4}, 7), x2 = s.indices({B, 4}, 7);
  MemoryVars mem;
  for (auto& [name, t] : m.initial_memory(B)) mem[name] = s.tape().constant(t);
  SegmentOut o1 = m.forward(s.tape(), x1, mem);
  SegmentOut o2 = m.forward(s.tape(), x2, o1.memory);
  std::vector<Var> outs{o1.logits, o2.logits};
  for (auto& [name, v] : o2.memory) outs.push_back(v);
  std::vector<Var> flat;
  for (Var& o : outs) flat.push_back(reshape(o, {o.value().numel()}));
  return concat(flat, 0);
}

MNEMO_GRADCHECK("arch.brt.two_segments", [](Sample& s) { return two_segments(s, tiny(), 2); });  // batch 2: the init_state broadcast

MNEMO_GRADCHECK("arch.brt.compressed_all_qknorm", [](Sample& s) {
  BrtConfig c = tiny();
  c.use_compressed_mem = true;  // W 2, c 2: block 2 evicts block 1 into one compressed slot
  c.compressed_mem_factor = 2;
  c.all_layers_qk_rmsnorm = true;
  c.read_recurrent_layers = {2};
  return two_segments(s, c, 1);
});

MNEMO_GRADCHECK("arch.brt.reference_parity", [](Sample& s) {
  BrtConfig c = tiny();
  c.reference_parity = true;
  c.seq_len = 4;
  BlockRecurrentTransformer& m = checked_model(s, c);
  const Tensor x = s.indices({1, 3}, 7);  // a partial second block: right-aligned positions
  MemoryVars mem;
  for (auto& [name, t] : m.initial_memory(1)) mem[name] = s.tape().constant(t);
  return m.forward(s.tape(), x, mem).logits;
});

}  // namespace
}  // namespace mnemo::arch
