// Token and position embeddings, and the output head.
//   Embedding: "weight" (V, D) ~ N(0, 1); tokens i32 (...) -> (..., D).
//   AbsolutePositionEmbedding: an Embedding over positions offset .. offset + n - 1 (SPEC 0.3.1).
//   FactorizedEmbedding (ALBERT, CT/MemXL emb_dim): Embedding(V, E) then Linear(E -> D); with
//   E = D just the embedding. LogitsHead: Linear(D -> E) then Linear(E -> V), or D -> V.
#pragma once

#include <optional>

#include "layers/linear.h"

namespace mnemo::nn {

struct Embedding : Module {
  Param weight;
  int64_t num, dim;

  Embedding(Init& init, int64_t num, int64_t dim);
  Var operator()(Tape& tape, const Tensor& ids) const;  // i32 (...) -> (..., D)
  void visit(ParamVisitor& v) override { v("weight", weight); }
};

struct AbsolutePositionEmbedding : Module {
  Embedding table;
  AbsolutePositionEmbedding(Init& init, int64_t max_len, int64_t dim) : table(init, max_len, dim) {}
  Var operator()(Tape& tape, int64_t n, int64_t offset = 0) const;  // (n, D)
  void visit(ParamVisitor& v) override { v.sub("emb", table); }
};

struct FactorizedEmbedding : Module {
  Embedding token;
  std::optional<Linear> to_model_dim;  // only when E != D

  FactorizedEmbedding(Init& init, int64_t vocab, int64_t emb_dim, int64_t dim);
  Var operator()(Tape& tape, const Tensor& tokens) const;  // i32 (B, T) -> (B, T, D)
  void visit(ParamVisitor& v) override {
    v.sub("token_emb", token);
    if (to_model_dim) v.sub("to_model_dim", *to_model_dim);
  }
};

struct LogitsHead : Module {
  std::optional<Linear> to_emb_dim;  // only when E != D
  Linear to_logits;

  LogitsHead(Init& init, int64_t dim, int64_t emb_dim, int64_t vocab);
  Var operator()(Var x) const;  // (..., D) -> (..., V)
  void visit(ParamVisitor& v) override {
    if (to_emb_dim) v.sub("to_emb_dim", *to_emb_dim);
    v.sub("to_logits", to_logits);
  }
};

}  // namespace mnemo::nn
