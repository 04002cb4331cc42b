#include "layers/rotary.h"

#include <cmath>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <numeric>
#include <vector>

#include "layers/testing.h"

namespace mnemo::nn {

Var apply_rotary(Var x, const Tensor& cos, const Tensor& sin) {
  MNEMO_CHECK(cos.rank() == 2 && sin.shape() == cos.shape() && cos.dim(1) % 2 == 0 && cos.dim(1) > 0,
              "[rotary] expected cos and sin tables (T, r) with r even, got " << cos.shape() << " and "
                                                                              << sin.shape());
  const int64_t T = cos.dim(0), r = cos.dim(1);
  MNEMO_CHECK(x.rank() >= 2 && x.dim(-2) == T && x.dim(-1) >= r,
              "[rotary] expected x (..., " << T << ", d >= " << r << "), got " << x.shape());
  MNEMO_CHECK(cos.dtype() == x.dtype() && sin.dtype() == x.dtype(),
              "[rotary] expected tables in x's dtype " << x.dtype() << ", got " << cos.dtype());
  Tape& tape = x.tape();
  const int64_t d = x.dim(-1);
  Var xr = d == r ? x : slice(x, -1, 0, r);                                     // (..., T, r)
  Var rot = concat({neg(slice(xr, -1, r / 2, r / 2)), slice(xr, -1, 0, r / 2)}, -1);  // (..., T, r)
  Var out = xr * tape.constant(cos) + rot * tape.constant(sin);                 // (..., T, r)
  return d == r ? out : concat({out, slice(x, -1, r, d - r)}, -1);
}

struct Rotary::RowCache {
  static constexpr size_t kMaxRows = size_t(1) << 16;  // beyond: computed, not kept
  std::mutex mu;
  std::tuple<int64_t, double, bool, double, int64_t> params;  // what the rows were made with
  std::unordered_map<int64_t, std::vector<double>> rows;       // key pos * 4 + sign + 1: [cos ; sin]
};

Rotary::Rotary(Init&, int64_t r, double th, bool xp, double base, int64_t width)
    : rot_dim(r), theta(th), xpos(xp), xpos_scale_base(base), xpos_width(width), rows_(std::make_shared<RowCache>()) {
  MNEMO_CHECK(r > 0 && r % 2 == 0, "[rotary] expected an even rot_dim > 0, got " << r);
  MNEMO_CHECK(th > 0, "[rotary] expected theta > 0, got " << th);
  MNEMO_CHECK(!xp || base > 0, "[rotary] expected xpos_scale_base > 0, got " << base);
  MNEMO_CHECK(width >= 0, "[rotary] expected xpos_width >= 0, got " << width);
}

// [cos ; sin] (2r) of one position
void Rotary::row(int64_t pos, int xpos_sign, std::vector<double>& r) const {
  const int64_t half = rot_dim / 2;
  r.assign(size_t(2 * rot_dim), 0.0);
  const double p = xpos ? double(pos - xpos_width / 2) / xpos_scale_base * xpos_sign : 0.0;
  for (int64_t i = 0; i < half; ++i) {
    // angles and the xPos power in double, so f64 checks see only rounding of the result
    const double angle = double(pos) * std::pow(theta, -2.0 * double(i) / double(rot_dim));
    const double zeta = (2.0 * double(i) + 0.4 * double(rot_dim)) / (1.4 * double(rot_dim));
    const double scale = p == 0.0 ? 1.0 : std::pow(zeta, p);
    for (int64_t j : {i, i + half}) {
      r[size_t(j)] = std::cos(angle) * scale;
      r[size_t(rot_dim + j)] = std::sin(angle) * scale;
    }
  }
}

std::pair<Tensor, Tensor> Rotary::tables(std::span<const int64_t> pos, DType dtype, int xpos_sign) const {
  MNEMO_CHECK(dtype == DType::f32 || dtype == DType::f64, "[rotary] expected a float dtype, got " << dtype);
  const int64_t T = int64_t(pos.size());
  std::vector<double> c(size_t(T * rot_dim)), s(size_t(T * rot_dim)), scratch;
  RowCache& cache = *rows_;
  const std::lock_guard<std::mutex> lock(cache.mu);
  const auto params = std::make_tuple(rot_dim, theta, xpos, xpos_scale_base, xpos_width);
  if (cache.params != params) cache.rows.clear(), cache.params = params;
  const int sign = xpos ? xpos_sign : 0;  // without xPos, query and key rows are the same rows
  for (int64_t t = 0; t < T; ++t) {
    const int64_t key = pos[size_t(t)] * 4 + sign + 1;
    const std::vector<double>* r = &scratch;
    if (auto it = cache.rows.find(key); it != cache.rows.end()) {
      r = &it->second;
    } else if (cache.rows.size() < RowCache::kMaxRows) {
      std::vector<double>& fresh = cache.rows[key];
      row(pos[size_t(t)], sign, fresh);
      r = &fresh;
    } else {
      row(pos[size_t(t)], sign, scratch);
    }
    std::copy(r->begin(), r->begin() + rot_dim, c.begin() + t * rot_dim);
    std::copy(r->begin() + rot_dim, r->end(), s.begin() + t * rot_dim);
  }
  return {Tensor::from({T, rot_dim}, c, dtype), Tensor::from({T, rot_dim}, s, dtype)};
}

Var Rotary::rotate(Var x, std::span<const int64_t> pos, bool key) const {
  MNEMO_CHECK(x.rank() >= 2 && x.dim(-2) == int64_t(pos.size()) && x.dim(-1) >= rot_dim,
              "[rotary] expected x (..., " << pos.size() << ", d >= " << rot_dim << "), got " << x.shape());
  auto [cos, sin] = tables(pos, x.dtype(), key ? -1 : 1);  // built on the host, copied once to x's device
  return apply_rotary(x, cos.to(x.value().device()), sin.to(x.value().device()));
}

std::pair<Var, Var> Rotary::operator()(Var q, Var k, std::span<const int64_t> q_pos,
                                       std::span<const int64_t> k_pos) const {
  MNEMO_CHECK(q.rank() == 4 && k.rank() == 4 && q.dim(0) == k.dim(0) && q.dim(-1) == k.dim(-1),
              "[rotary] expected q (B, H, Tq, d) and k (B, Hk, Tk, d), got " << q.shape() << " and " << k.shape());
  MNEMO_CHECK(q.dim(2) == int64_t(q_pos.size()) && k.dim(2) == int64_t(k_pos.size()),
              "[rotary] expected " << q.dim(2) << " query and " << k.dim(2) << " key positions, got "
                                   << q_pos.size() << " and " << k_pos.size());
  return {rotate(q, q_pos, false), rotate(k, k_pos, true)};
}

std::pair<Var, Var> Rotary::operator()(Var q, Var k) const {
  MNEMO_CHECK(q.rank() == 4 && k.rank() == 4 && q.dim(2) <= k.dim(2),
              "[rotary] expected q (B, H, Tq, d) and k (B, Hk, Tk >= Tq, d), got " << q.shape() << " and "
                                                                                   << k.shape());
  std::vector<int64_t> k_pos(size_t(k.dim(2)));
  std::iota(k_pos.begin(), k_pos.end(), int64_t(0));
  const std::span<const int64_t> q_pos(k_pos.data() + (k.dim(2) - q.dim(2)), size_t(q.dim(2)));
  return (*this)(q, k, q_pos, k_pos);
}

using gradcheck::Sample;
namespace {
Var both(std::pair<Var, Var> qk) {  // one output for the checker: q' and k' flattened
  return concat({reshape(qk.first, {qk.first.value().numel()}), reshape(qk.second, {qk.second.value().numel()})}, 0);
}
}  // namespace
MNEMO_GRADCHECK("layers.rotary", [](Sample& s) {
  Rotary& rope = checked_layer<Rotary>(s, 4, 10.0);  // rot_dim 4 of 6: the pass-through path too
  const std::vector<int64_t> qp{3, 4}, kp{0, 1, 2, 3, 4};
  return both(rope(s.input({2, 2, 2, 6}), s.input({2, 1, 5, 6}), qp, kp));
});
MNEMO_GRADCHECK("layers.rotary.xpos", [](Sample& s) {
  Rotary& rope = checked_layer<Rotary>(s, 4, 10.0, true, 2.0, 4);
  return both(rope(s.input({1, 2, 3, 4}), s.input({1, 2, 3, 4})));
});

}  // namespace mnemo::nn
