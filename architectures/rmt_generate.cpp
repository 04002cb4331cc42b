// RMT's cached decoder (SegmentModel::cached_generator; the shared bookkeeping in
// segment_cache.h). Under the causal mask a token row sees [xl ; null ; read slots ; tokens up
// to itself] and nothing behind it (the write slots come last), so:
//   segment start   the read rows run through the layers once (they see only [xl ; null ;
//                   read], step 5), leaving per layer the keys/values [xl ; null ; read];
//   each token      runs its own position through the layers against that cache, appends its
//                   keys/values (value-mixed, unrotated, as forward() caches them) and reads
//                   its logits; rotary positions are forward()'s (rotary_positions), so
//                   reference_parity's P3 order holds too;
//   segment end     forward() over the full segment: the write slots, which see every token,
//                   and the XL caches it leaves, exactly as in training.
// O(L + m + p) per token instead of re-running the p tokens so far with both sets of slots.
#include "architectures/rmt.h"
#include "architectures/segment_cache.h"

namespace mnemo::arch {
namespace {

class RmtCache : public SegmentCache {
 public:
  RmtCache(const RecurrentMemoryTransformer& m, const Memory& memory, int64_t B, int64_t seg_len)
      : SegmentCache(m, memory, B, seg_len, "rmt"), m_(m) {}

 private:
  void begin_segment(Tape& tape, const MemoryVars& memory) override {
    const int64_t B = batch(), depth = m_.cfg.depth;
    const std::vector<Var> xl = m_.xl_caches(memory, B);
    k_.assign(size_t(depth), Var{});
    v_ = k_;
    xl_len_.assign(size_t(depth), 0);
    for (int64_t l = 0; l < depth; ++l) {  // [xl ; null] in front of every row of layer l
      const Var& c = xl[size_t(m_.xl_source(l))];
      const auto [nk, nv] = m_.null_key_value(l, tape, B);
      if (c.defined()) {
        xl_len_[size_t(l)] = c.dim(3);
        const auto half = [&](int64_t which) {  // (B, 2, H, L, d) -> (B, H, L, d)
          return reshape(slice(c, 1, which, 1), {c.dim(0), c.dim(2), c.dim(3), c.dim(4)});
        };
        k_[size_t(l)] = append_keys(half(0), nk);
        v_[size_t(l)] = append_keys(half(1), nv);
      } else {
        k_[size_t(l)] = nk, v_[size_t(l)] = nv;
      }
    }
    const Var read = m_.read_slots(tape, memory, B);  // (B, m, D) or undefined
    r_ = read.defined() ? read.dim(1) : 0;
    if (r_ > 0) run_rows(read, 0, /*read_rows=*/true);
  }

  Tensor extend(Tape& tape, const Tensor& tokens, int64_t pos) override {
    const Var y = run_rows(m_.embed(tape, tokens, pos), pos, /*read_rows=*/false);  // (B, n, D)
    return last_logits(m_.to_logits(y));
  }

  // forward()'s layers for rows x (B, n, D): the read slots (read_rows) or the tokens at
  // positions [pos, pos + n), against each layer's cache, whose keys/values they extend.
  // Returns the rows after the final norm.
  Var run_rows(Var x, int64_t pos, bool read_rows) {
    const RmtConfig& c = m_.cfg;
    const int64_t n = x.dim(1);
    Var Hs = nn::expand_streams(x, c.num_residual_streams);  // (B, n, S, D)
    Var v_first;                                             // (B, H, n, d) layer 0's values
    for (int64_t l = 0; l < c.depth; ++l) {
      const RmtLayer& layer = m_.layers[size_t(l)];
      Var& k = k_[size_t(l)];
      Var& v = v_[size_t(l)];
      nn::AttentionContext ctx = m_.mask_context(read_rows ? n : 0, 0);  // token rows: causal over the cache
      ctx.xl_k = k, ctx.xl_v = v, ctx.v_first = v_first;
      const int64_t L = xl_len_[size_t(l)], prefix = k.defined() ? k.dim(2) : 0;
      const int64_t null = prefix - L - (read_rows ? 0 : r_ + pos);  // 1 with a null slot
      if (c.mask_out_read_memories && r_ > 0) {  // the read columns hidden from every row (P7 fixed)
        Tensor kp = Tensor::full({batch(), prefix + n}, 1.0, DType::u8);
        const int64_t first = L + null, width = prefix + n;
        for (int64_t b = 0; b < batch(); ++b)
          for (int64_t j = 0; j < r_; ++j) kp.data<uint8_t>()[b * width + first + j] = 0;
        ctx.key_padding = kp;
      }
      if (m_.rotary) {
        ctx.rotate = [&](Var q, Var keys) {
          // forward()'s positions for [read ; tokens up to these] with L cached keys; the
          // rows here are the last n of its queries
          const auto [q_all, k_pos] = m_.rotary_positions(r_, read_rows ? 0 : pos + n, 0, L);
          const std::vector<int64_t> q_pos(q_all.end() - n, q_all.end());
          return m_.rotate(q, keys, q_pos, k_pos);
        };
      }
      const nn::HyperConnections::Width w = layer.attn_hc.width(Hs);
      const nn::AttentionOutput a = layer.attn(layer.attn_norm(w.branch_input), ctx);
      if (l == 0) v_first = a.v_raw;
      k = append_keys(k, a.k);
      v = append_keys(v, a.v);
      Hs = layer.attn_hc.depth(w, a.out);
      const nn::HyperConnections::Width f = layer.ff_hc.width(Hs);
      Hs = layer.ff_hc.depth(f, layer.ff(f.branch_input));
    }
    return m_.norm(nn::reduce_streams(Hs, c.num_residual_streams));
  }

  const RecurrentMemoryTransformer& m_;
  int64_t r_ = 0;                // read slots this segment
  std::vector<int64_t> xl_len_;  // per layer: XL slots it reads
  std::vector<Var> k_, v_;       // per layer (B, H, L + null + r + p, d): [xl ; null ; read ; tokens so far]
};

}  // namespace

std::unique_ptr<Generator> RecurrentMemoryTransformer::cached_generator(const Memory& memory, int64_t batch,
                                                                        int64_t seg_len) const {
  // An encoder lets a token see the tokens after it: nothing to cache.
  if (!cfg.causal || seg_len > cfg.seq_len) return nullptr;
  return std::make_unique<RmtCache>(*this, memory.empty() ? initial_memory(batch) : memory, batch, seg_len);
}

}  // namespace mnemo::arch
