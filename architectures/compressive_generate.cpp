// The Compressive Transformer's cached decoder (SegmentModel::cached_generator; the shared
// bookkeeping in segment_cache.h). Memories change only when a segment is full, so within a
// segment each memory layer's keys/values of its [cm; m] are projected once, and the tokens'
// keys/values are appended as they come: a new token attends to [memory; earlier tokens;
// itself] with the relative rows forward() gives it (P2's rows under reference_parity too),
// as a band like forward()'s, O(M + p) per token instead of re-running the p tokens so far. The full segment's forward
// then pushes the FIFO, compresses what it evicts, exactly as in training.
#include <cmath>
#include <tuple>

#include "architectures/compressive.h"
#include "architectures/segment_cache.h"
#include "layers/relative_bias.h"

namespace mnemo::arch {
namespace {

class CompressiveCache : public SegmentCache {
 public:
  CompressiveCache(const CompressiveTransformer& m, const Memory& memory, int64_t B, int64_t seg_len)
      : SegmentCache(m, memory, B, seg_len, "compressive"), m_(m) {}

 private:
  void begin_segment(Tape& /*tape*/, const MemoryVars& memory) override {
    const int64_t B = batch(), D = m_.cfg.dim;
    const Var mem = memory.at("mem"), cmem = memory.at("cmem");  // (k, B, L, D)
    MNEMO_CHECK(mem.rank() == 4 && mem.dim(0) == m_.num_memory_layers() && mem.dim(1) == B && mem.dim(3) == D &&
                    cmem.rank() == 4 && cmem.dim(1) == B,
                "[compressive generator] expected memories (" << m_.num_memory_layers() << ", " << B << ", L, " << D
                                                              << "), got " << mem.shape() << " and " << cmem.shape());
    n_mem_ = mem.dim(2) + cmem.dim(2);
    k_.assign(size_t(m_.cfg.depth), Var{});
    v_ = k_;
    if (n_mem_ == 0) return;
    const auto layer_slots = [&](const Var& x, int64_t j) {  // (k, B, L, D) -> (B, L, D) of memory layer j
      return reshape(slice(x, 0, j, 1), {B, x.dim(2), D});
    };
    for (int64_t l = 0; l < m_.cfg.depth; ++l) {
      const int64_t j = m_.memory_slot(l);
      if (j < 0) continue;
      const int64_t src = m_.memory_source(j);
      Var slots = cmem.dim(2) == 0 ? layer_slots(mem, src)
                  : mem.dim(2) == 0 ? layer_slots(cmem, src)
                                    : concat({layer_slots(cmem, src), layer_slots(mem, src)}, 1);  // [cm; m]
      std::tie(k_[size_t(l)], v_[size_t(l)]) = project_slots(m_.attn_layers[size_t(l)].attn, slots);
    }
  }

  // forward() of the positions [pos, pos + n), every layer against its cache.
  Tensor extend(Tape& tape, const Tensor& tokens, int64_t /*pos*/) override {
    const double scale = 1.0 / std::sqrt(double(m_.cfg.dim / m_.cfg.heads));
    Var h = m_.emb(tape, tokens);  // (B, n, D)
    for (int64_t l = 0; l < m_.cfg.depth; ++l) {
      const GatedAttention& a = m_.attn_layers[size_t(l)];
      Var& k = k_[size_t(l)];
      Var& v = v_[size_t(l)];
      nn::AttentionContext ctx{.xl_k = k, .xl_v = v, .causal = true};
      // The row of each key as forward() gives it: by distance, keys [cm; m; tokens so far]
      // and the queries the last n of them; parity's rows also read the memory count (P2).
      // A band, like forward()'s (dense_relative_term: the gathered (B, H, n, n_keys) logits).
      const auto rows = [&](Var q, int64_t n_keys) { return m_.relative_rows(q.dim(2), n_keys, n_mem_); };
      if (m_.dense_relative_term)
        ctx.q_bias = [&](Var q, int64_t n_keys) {
          return nn::gather_row_logits(tape.param(m_.rel.weight), q, n_keys, rows(q, n_keys), scale);
        };
      else
        ctx.q_band = [&](Var q, int64_t n_keys) {
          return nn::band_row_logits(tape.param(m_.rel.weight), q, n_keys, rows(q, n_keys), scale);
        };
      const nn::AttentionOutput o = a.attn(a.norm(h), ctx);
      k = append_keys(k, o.k);
      v = append_keys(v, o.v);
      h = a.gate ? (*a.gate)(h, o.out) : h + o.out;  // (B, n, D)
      h = m_.ff_layers[size_t(l)](h);
    }
    return last_logits(m_.head(m_.norm ? (*m_.norm)(h) : h));
  }

  const CompressiveTransformer& m_;
  int64_t n_mem_ = 0;         // memory slots every memory layer reads this segment
  std::vector<Var> k_, v_;    // per layer (B, H, M + p, d): memory slots, then the tokens so far
};

}  // namespace

std::unique_ptr<Generator> CompressiveTransformer::cached_generator(const Memory& memory, int64_t batch,
                                                                    int64_t seg_len) const {
  if (seg_len > cfg.seq_len) return nullptr;  // forward() refuses it: the generic path says so
  return std::make_unique<CompressiveCache>(*this, memory.empty() ? initial_memory(batch) : memory, batch, seg_len);
}

}  // namespace mnemo::arch
