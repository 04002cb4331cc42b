#include "architectures/brt_generate.h"

#include <algorithm>

#include "layers/sampling.h"

namespace mnemo::arch {
namespace {

// The last step's logits of (B, n, V) as (B, V).
Tensor last_logits(Var logits) {
  const int64_t B = logits.dim(0), n = logits.dim(1), V = logits.dim(2);
  return reshape(slice(logits, 1, n - 1, 1), {B, V}).value();
}

// The growing stream (B, prime + new), one column appended per sample.
struct Stream {
  int64_t B;
  std::vector<std::vector<int32_t>> rows;
  Tensor range(int64_t t0, int64_t n) const {
    std::vector<int32_t> v;
    for (const auto& r : rows) v.insert(v.end(), r.begin() + t0, r.begin() + t0 + n);
    return Tensor::from_ints({B, n}, v);
  }
  int64_t len() const { return int64_t(rows[0].size()); }
  void push(const Tensor& sample) {
    for (int64_t b = 0; b < B; ++b) rows[size_t(b)].push_back(sample.data<int32_t>()[b]);
  }
};

Tensor draw(const Tensor& logits, const BrtGenerateOptions& o, Rng& rng) {
  return nn::gumbel_sample(nn::top_k_filter(logits, o.filter_thres, nn::TopKRounding::ceil), o.temperature, rng);
}

// The reference's way: a full forward over the segment so far for every token.
void generate_uncached(const BlockRecurrentTransformer& m, Stream& s, Memory& mem, int64_t P,
                       const BrtGenerateOptions& o, Rng& rng) {
  const int64_t T = m.cfg.seq_len;
  int64_t seg_start = 0;
  for (int64_t p = P; p < P + o.length; ++p) {  // sample stream position p from tokens [0, p)
    while (p - seg_start > T) {                  // a complete segment: its memory moves on
      Tape tape;
      Tape::NoRecord nr(tape);
      mem = values(m.forward(tape, s.range(seg_start, T), constants(tape, mem)).memory);
      seg_start += T;
    }
    Tape tape;
    Tape::NoRecord nr(tape);
    SegmentOut out = m.forward(tape, s.range(seg_start, p - seg_start), constants(tape, mem));
    s.push(draw(last_logits(out.logits), o, rng));
  }
  const int64_t end = s.len();
  while (end - seg_start >= T) {
    Tape tape;
    Tape::NoRecord nr(tape);
    mem = values(m.forward(tape, s.range(seg_start, T), constants(tape, mem)).memory);
    seg_start += T;
  }
}

// One pass with a per-block key/value cache per layer.
class CachedRun {
 public:
  CachedRun(const BlockRecurrentTransformer& m, Tape& tape, const Memory& mem, int64_t B)
      : m_(m), tape_(tape), B_(B), c_(m.carry_in(tape, constants(tape, mem), B)), cache_(size_t(m.cfg.depth)) {
    prep_ = m_.prepare_states(c_, B_);
  }

  // Feeds tokens (B, n) that fit in the current block; returns the logits (B, n, V).
  Var feed(const Tensor& tokens) {
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
    return m_.logits(x);
  }
  // Tokens the current block can still take.
  int64_t room() const { return m_.cfg.block_width - j_; }
  Memory& segment_memory() { return segment_memory_; }

 private:
  const BlockRecurrentTransformer& m_;
  Tape& tape_;
  int64_t B_;
  BlockRecurrentTransformer::Carry c_;
  std::vector<Var> cache_;  // per layer (B, j, 2d)
  std::vector<BrtStateContainer::Prepared> prep_;
  int64_t j_ = 0, blocks_ = 0;
  Memory segment_memory_;
};

void generate_cached(const BlockRecurrentTransformer& m, Stream& s, Memory& mem, int64_t P,
                     const BrtGenerateOptions& o, Rng& rng) {
  Tape tape;
  Tape::NoRecord nr(tape);
  CachedRun run(m, tape, mem, s.B);
  run.segment_memory() = mem;
  Var logits;
  for (int64_t t = 0; t < P;) {  // the prime, a block's worth at a time
    const int64_t n = std::min(run.room(), P - t);
    logits = run.feed(s.range(t, n));
    t += n;
  }
  for (int64_t i = 0; i < o.length; ++i) {
    s.push(draw(last_logits(logits), o, rng));
    if (i + 1 < o.length || (s.len()) % m.cfg.seq_len == 0) logits = run.feed(s.range(s.len() - 1, 1));
  }
  mem = run.segment_memory();
}

}  // namespace

BrtGenerated brt_generate(const BlockRecurrentTransformer& m, const Tensor& prime, Memory memory,
                          const BrtGenerateOptions& o) {
  MNEMO_CHECK(prime.rank() == 2 && prime.dim(1) >= 1 && prime.dtype() == DType::i32,
              "[brt_generate] expected a prime (B, P >= 1) i32, got " << prime.shape());
  MNEMO_CHECK(o.length >= 0, "[brt_generate] expected length >= 0, got " << o.length);
  const int64_t B = prime.dim(0), P = prime.dim(1);
  if (memory.empty()) memory = m.initial_memory(B);
  Stream s{B, std::vector<std::vector<int32_t>>(size_t(B))};
  for (int64_t b = 0; b < B; ++b)
    s.rows[size_t(b)].assign(prime.data<int32_t>() + b * P, prime.data<int32_t>() + (b + 1) * P);
  Rng rng(o.seed);
  if (o.cache)
    generate_cached(m, s, memory, P, o, rng);
  else
    generate_uncached(m, s, memory, P, o, rng);
  return {s.range(P, o.length), memory};
}

}  // namespace mnemo::arch
