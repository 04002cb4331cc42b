// Memory Transformer-XL's cached decoder (SegmentModel::cached_generator; the shared
// bookkeeping in segment_cache.h). The long and short memories change only when a segment is
// full, so within a segment each memory layer's keys/values of [n(m); n(s^l)] are projected
// once, and the tokens' keys/values are appended as they come. The attention layer puts its
// persistent slots P_l after the cache ([memory; earlier tokens; P_l; new tokens]); softmax
// does not care about key order, and each key keeps the relative row forward() gives it in
// its own order [P_l; memory; tokens]. The full segment's forward then writes the long memory
// (the memory attention network over [s^l; h^{l-1}]) and pushes the short one, as in training.
#include <cmath>
#include <tuple>

#include "architectures/memxl.h"
#include "architectures/segment_cache.h"
#include "layers/relative_bias.h"

namespace mnemo::arch {
namespace {

class MemXLCache : public SegmentCache {
 public:
  MemXLCache(const MemoryTransformerXL& m, const Memory& memory, int64_t B, int64_t seg_len)
      : SegmentCache(m, memory, B, seg_len, "memxl"), m_(m) {}

 private:
  void begin_segment(Tape& /*tape*/, const MemoryVars& memory) override {
    const int64_t B = batch(), D = m_.cfg.dim;
    const Var short_mem = memory.at("short"), long_mem = memory.at("long");  // (Lm, B, Ls, D), (B, Ll, D)
    MNEMO_CHECK(short_mem.rank() == 4 && short_mem.dim(0) == m_.memory_depth() && short_mem.dim(1) == B &&
                    short_mem.dim(3) == D && long_mem.rank() == 3 && long_mem.dim(0) == B && long_mem.dim(2) == D,
                "[memxl generator] expected short (" << m_.memory_depth() << ", " << B << ", Ls, " << D << ") and long ("
                                                     << B << ", Ll, " << D << "), got " << short_mem.shape() << " and "
                                                     << long_mem.shape());
    Ls_ = short_mem.dim(2);
    k_.assign(size_t(m_.cfg.depth), Var{});
    v_ = k_;
    n_slots_.assign(size_t(m_.cfg.depth), 0);
    for (int64_t l = 0; l < m_.cfg.depth; ++l) {
      const int64_t mi = m_.memory_index(l);
      if (mi < 0) continue;
      std::vector<Var> slots;  // [long; short_l], as forward() reads them
      if (long_mem.dim(1) > 0) slots.push_back(long_mem);
      if (Ls_ > 0) slots.push_back(reshape(slice(short_mem, 0, mi, 1), {B, Ls_, D}));
      if (slots.empty()) continue;
      const auto& attn = m_.attn_layers[size_t(l)];
      Var mem = slots.size() > 1 ? concat(slots, 1) : slots[0];
      n_slots_[size_t(l)] = mem.dim(1);
      std::tie(k_[size_t(l)], v_[size_t(l)]) = project_slots(attn.fn, m_.cfg.reference_parity ? mem : attn.norm(mem));
    }
  }

  // forward() of the positions [pos, pos + n), every layer against its cache.
  Tensor extend(Tape& tape, const Tensor& tokens, int64_t pos) override {
    const int64_t n = tokens.dim(1), P = m_.cfg.num_mem_kv;
    const double scale = 1.0 / std::sqrt(double(m_.cfg.dim / m_.cfg.heads));
    Var R = tape.param(m_.pos_emb);
    Var h = m_.emb(tape, tokens);  // (B, n, D)
    for (int64_t l = 0; l < m_.cfg.depth; ++l) {
      const auto& attn = m_.attn_layers[size_t(l)];
      Var& k = k_[size_t(l)];
      Var& v = v_[size_t(l)];
      const int64_t cached = n_slots_[size_t(l)] + pos;  // keys in front of the persistent slots
      nn::AttentionContext ctx{.xl_k = k, .xl_v = v, .causal = true};
      const auto rows = [&](int64_t n_keys) {
        // key c here -> its index in forward()'s [P_l; memory; tokens], queries the last n
        const auto canonical = [&](int64_t c) { return c < cached ? P + c : c < cached + P ? c - cached : c; };
        std::vector<int64_t> rows(size_t(n * n_keys));
        for (int64_t r = 0; r < n; ++r)
          for (int64_t c = 0; c < n_keys; ++c)
            rows[size_t(r * n_keys + c)] = m_.position_row(pos + r, canonical(c), pos + n, n_keys, Ls_);
        return rows;
      };
      // A band, like forward()'s; with persistent slots (P > 0) their zero rows sit between the
      // cache and the new tokens, which no band shift gives, and band_row_logits gathers a
      // (n + n_keys - 1)-wide band instead (a few rows per call while generating).
      if (m_.dense_relative_term)
        ctx.q_bias = [&](Var q, int64_t n_keys) { return nn::gather_row_logits(R, q, n_keys, rows(n_keys), scale); };
      else
        ctx.q_band = [&](Var q, int64_t n_keys) { return nn::band_row_logits(R, q, n_keys, rows(n_keys), scale); };
      const nn::AttentionOutput o = attn.fn(attn.norm(h), ctx);
      k = append_keys(k, o.k);
      v = append_keys(v, o.v);
      h = attn.combine(h, o.out);
      const auto& ff = m_.ff_layers[size_t(l)];
      h = ff.combine(h, ff.fn(ff.norm(h)));
    }
    return last_logits(m_.head(h));
  }

  const MemoryTransformerXL& m_;
  int64_t Ls_ = 0;                // short-memory slots this segment
  std::vector<int64_t> n_slots_;  // per layer: memory slots it reads (long + short)
  std::vector<Var> k_, v_;        // per layer (B, Hk, slots + p, d): memory slots, then the tokens so far
};

}  // namespace

std::unique_ptr<Generator> MemoryTransformerXL::cached_generator(const Memory& memory, int64_t batch,
                                                                 int64_t seg_len) const {
  if (seg_len > cfg.seq_len) return nullptr;  // forward() refuses it: the generic path says so
  return std::make_unique<MemXLCache>(*this, memory.empty() ? initial_memory(batch) : memory, batch, seg_len);
}

}  // namespace mnemo::arch
