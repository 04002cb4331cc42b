// BRT's cached decoder (SegmentModel::cached_generator, SPEC 1.4): one pass over the stream
// with, per layer, the current block's unrotated keys/values. A token attends to [memory;
// cached block keys; itself] and reads the block-start states; when a block fills, states are
// written and the XL memories pushed through the same end_block as forward(), and every
// T / W blocks the segment's memory is taken. O(W) work per token instead of re-running the
// partial segment (O(T)); the default positions make a block's prefix compute what the full
// block does (brt.cpp, P3), so the logits equal forward()'s. The sampler is the caller's
// (experiments/generate.cpp).
#include <algorithm>

#include "architectures/brt.h"
#include "common/serial_scope.h"

namespace mnemo::arch {
namespace {

class BrtGenerator : public Generator {
 public:
  BrtGenerator(const BlockRecurrentTransformer& m, const Memory& memory, int64_t B)
      : m_(m), B_(B), c_(m.carry_in(tape_, constants(tape_, memory), B)), cache_(size_t(m.cfg.depth)),
        segment_memory_(memory) {
    prep_ = m_.prepare_states(c_, B_);
  }

  void feed(const Tensor& tokens) override {
    MNEMO_CHECK(tokens.rank() == 2 && tokens.dim(0) == B_ && tokens.dim(1) >= 1 && tokens.dtype() == DType::i32,
                "[brt generator] expected tokens (" << B_ << ", n >= 1) i32, got " << tokens.shape());
    for (int64_t t = 0; t < tokens.dim(1);) {  // a block's worth at a time
      const int64_t n = std::min(m_.cfg.block_width - j_, tokens.dim(1) - t);
      feed_block_part(n == tokens.dim(1) ? tokens : token_columns(tokens, t, n));
      t += n;
    }
  }
  Tensor next_logits() override {
    MNEMO_CHECK(last_.defined(), "[brt generator] feed at least one token before asking for logits");
    return last_;
  }
  Memory memory() const override { return segment_memory_; }

 private:
  // Tokens (B, n) that fit in the current block.
  void feed_block_part(const Tensor& tokens) {
    const SerialScope serial(B_ * tokens.dim(1) <= kSerialDecodeRows);
    Var x = m_.token_emb(tape_, tokens);  // (B, n, D)
    for (int64_t l = 0; l < m_.cfg.depth; ++l) {
      Var kv;
      Var& cached = cache_[size_t(l)];
      x = m_.layer_forward(l, x, c_, cached, j_, m_.cfg.block_width, prep_, &kv);
      cached = cached.defined() ? concat({cached, kv}, 1) : kv;  // (B, j + n, 2d)
    }
    j_ += tokens.dim(1);
    if (j_ == m_.cfg.block_width) {  // the block is complete: write states, push memories
      m_.end_block(c_, cache_, prep_);
      for (Var& k : cache_) k = Var{};
      j_ = 0;
      prep_ = m_.prepare_states(c_, B_);
      if (++blocks_ % (m_.cfg.seq_len / m_.cfg.block_width) == 0) segment_memory_ = values(m_.carry_out(tape_, c_, B_));
    }
    const int64_t n = x.dim(1);
    Var h = n == 1 ? x : slice(x, 1, n - 1, 1);                   // (B, 1, D)
    last_ = reshape(m_.logits(h), {B_, m_.cfg.vocab}).value();   // (B, V)
  }

  const BlockRecurrentTransformer& m_;
  int64_t B_;
  Tape tape_;
  Tape::NoRecord no_record_{tape_};
  BlockRecurrentTransformer::Carry c_;
  std::vector<Var> cache_;  // per layer (B, j, 2d): the current block's keys | values so far
  std::vector<BrtStateContainer::Prepared> prep_;
  int64_t j_ = 0, blocks_ = 0;  // tokens in the current block, blocks completed
  Memory segment_memory_;       // after the last complete segment
  Tensor last_;                 // (B, V)
};

}  // namespace

std::unique_ptr<Generator> BlockRecurrentTransformer::cached_generator(const Memory& memory, int64_t batch,
                                                                       int64_t seg_len) const {
  if (seg_len != cfg.seq_len) return nullptr;  // the cache follows the model's own segments
  return std::make_unique<BrtGenerator>(*this, memory.empty() ? initial_memory(batch) : memory, batch);
}

}  // namespace mnemo::arch
