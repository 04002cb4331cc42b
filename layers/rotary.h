// Rotary position embedding, half-split convention (SPEC 0.3.2), with optional xPos (0.3.3).
//   inv_freq_i = theta^(-2i/r), i < r/2;   angle(t) = [t inv_freq, t inv_freq]   (r = rot_dim)
//   x' = x cos(angle(t)) + rot(x) sin(angle(t)),   rot(x) = concat(-x[r/2:r], x[:r/2])
// on the first r features of x (the rest pass through). xPos: zeta_i = (2i + 0.4 r)/(1.4 r),
// p(t) = (t - Wr//2)/scale_base; queries are scaled by zeta^p(t), keys by zeta^-p(t), so
// q'.k' depends only on the offset between query and key positions.
#pragma once

#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "autograd/ops/ops.h"
#include "layers/init.h"
#include "layers/module.h"

namespace mnemo::nn {

// x (..., T, d) with d >= r; cos, sin (T, r) in x's dtype. Returns (..., T, d).
Var apply_rotary(Var x, const Tensor& cos, const Tensor& sin);

struct Rotary : Module {
  int64_t rot_dim;
  double theta;
  bool xpos;
  double xpos_scale_base;
  int64_t xpos_width;  // Wr: the reference's rotary table width, the centre of the xPos exponent

  Rotary(Init& init, int64_t rot_dim, double theta = 10000, bool xpos = false, double xpos_scale_base = 512,
         int64_t xpos_width = 0);

  // q (B, H, Tq, d), k (B, Hk, Tk, d) -> the same shapes. q_pos (Tq) and k_pos (Tk) are
  // absolute positions, so memories in front of the keys are expressed by their positions.
  std::pair<Var, Var> operator()(Var q, Var k, std::span<const int64_t> q_pos, std::span<const int64_t> k_pos) const;
  // Keys at 0..Tk-1, queries aligned to the end of the keys: Tk-Tq..Tk-1.
  std::pair<Var, Var> operator()(Var q, Var k) const;

  // One side alone (e.g. state queries of BRT): key = true scales by zeta^-p instead of zeta^p.
  Var rotate(Var x, std::span<const int64_t> pos, bool key = false) const;

  // cos and sin tables (T, r) for these positions, the xPos factor folded in (sign +1 for
  // queries, -1 for keys, 0 for none).
  std::pair<Tensor, Tensor> tables(std::span<const int64_t> pos, DType dtype, int xpos_sign = 0) const;

  void visit(ParamVisitor&) override {}

 private:
  // cos and sin rows per (position, xpos sign), computed once: a cached decoder rotates all
  // its keys again for every token, and pow/sincos per element were 13% of an RMT token.
  // Shared by copies; forgotten when the fields above change.
  struct RowCache;
  std::shared_ptr<RowCache> rows_;
  void row(int64_t pos, int xpos_sign, std::vector<double>& out) const;  // [cos ; sin] (2r)
};

}  // namespace mnemo::nn
