#include "layers/embedding.h"

#include "layers/testing.h"

namespace mnemo::nn {

Embedding::Embedding(Init& init, int64_t n, int64_t d) : weight(init.normal({n, d})), num(n), dim(d) {}

Var Embedding::operator()(Tape& tape, const Tensor& ids) const { return embedding(tape.param(weight), ids); }

Var AbsolutePositionEmbedding::operator()(Tape& tape, int64_t n, int64_t offset) const {
  MNEMO_CHECK(offset >= 0 && offset + n <= table.num,
              "[position_embedding] positions " << offset << ".." << offset + n - 1 << " exceed the table of "
                                                << table.num);
  std::vector<int32_t> pos(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) pos[size_t(i)] = int32_t(offset + i);
  return table(tape, Tensor::from_ints({n}, pos));
}

FactorizedEmbedding::FactorizedEmbedding(Init& init, int64_t vocab, int64_t emb_dim, int64_t dim)
    : token(init, vocab, emb_dim) {
  if (emb_dim != dim) to_model_dim.emplace(init, emb_dim, dim);
}

Var FactorizedEmbedding::operator()(Tape& tape, const Tensor& tokens) const {
  Var x = token(tape, tokens);  // (B, T, E)
  return to_model_dim ? (*to_model_dim)(x) : x;
}

LogitsHead::LogitsHead(Init& init, int64_t dim, int64_t emb_dim, int64_t vocab)
    : to_emb_dim(emb_dim != dim ? std::optional<Linear>(std::in_place, init, dim, emb_dim) : std::nullopt),
      to_logits(init, emb_dim, vocab) {}

Var LogitsHead::operator()(Var x) const { return to_logits(to_emb_dim ? (*to_emb_dim)(x) : x); }

using gradcheck::Sample;
MNEMO_GRADCHECK("layers.embedding", [](Sample& s) {
  Embedding& e = checked_layer<Embedding>(s, 7, 3);
  return e(s.tape(), s.indices({2, 4}, 7));
});
MNEMO_GRADCHECK("layers.position_embedding", [](Sample& s) {
  return checked_layer<AbsolutePositionEmbedding>(s, 8, 3)(s.tape(), 4, 2);
});
MNEMO_GRADCHECK("layers.factorized_embedding", [](Sample& s) {
  FactorizedEmbedding& e = checked_layer<FactorizedEmbedding>(s, 9, 3, 5);
  return e(s.tape(), s.indices({2, 3}, 9));
});
MNEMO_GRADCHECK("layers.logits_head.factorized", [](Sample& s) {
  return checked_layer<LogitsHead>(s, 5, 3, 7)(s.input({2, 3, 5}));
});

}  // namespace mnemo::nn
