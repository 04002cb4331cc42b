// LinearSelfAttention: n = LN(x); q = n Wq; [k, v] = concat(n, c) Wkv; per head
// o = softmax_d(q) (softmax_seq(k)^T v); y = merge(o) Wout. Cost O((S + N) d^2) per head.
#include "layers/linear_attention.h"

#include "layers/testing.h"

namespace mnemo::nn {

LinearSelfAttention::LinearSelfAttention(Init& init, int64_t d, int64_t h, bool parity)
    : dim(d), heads(h), reference_parity(parity) {
  MNEMO_CHECK(d >= 1 && h >= 1 && d % h == 0,
              "[linear_attention] expected dim divisible by heads, got dim " << d << ", heads " << h);
  wq = init.fan_in_uniform({d, d}, d);
  wkv = init.fan_in_uniform({d, 2 * d}, d);
  wout = init.fan_in_uniform({d, d}, d);
}

Var LinearSelfAttention::operator()(Var x, Var c) const {
  MNEMO_CHECK(x.rank() == 3 && x.dim(1) >= 1 && x.dim(2) == dim,
              "[linear_attention] expected slots (B, S >= 1, " << dim << "), got " << x.shape());
  const int64_t B = x.dim(0), S = x.dim(1), H = heads, dh = dim / heads;
  if (c.defined())
    MNEMO_CHECK(c.rank() == 3 && c.dim(0) == B && c.dim(2) == dim,
                "[linear_attention] expected context (" << B << ", N, " << dim << "), got " << c.shape());
  Tape& t = x.tape();
  Var n = layer_norm(x, Var{}, Var{}, 1e-5);                                   // (B, S, D)
  Var q = matmul(n, t.param(wq));                                              // (B, S, D)
  Var kv_in = c.defined() && c.dim(1) > 0 ? concat({n, c}, 1) : n;             // (B, L, D), L = S + N
  const int64_t L = kv_in.dim(1);
  std::vector<Var> kv = split(matmul(kv_in, t.param(wkv)), 2, std::vector<int64_t>{dim, dim});  // 2 x (B, L, D)

  Var qh = softmax(permute(reshape(q, {B, S, H, dh}), {0, 2, 1, 3}));          // (B, H, S, d), over d
  // k straight to (B, H, d, L): the sequence axis is last for its softmax and k^T is what ctx needs.
  Var kt = softmax(permute(reshape(kv[0], {B, L, H, dh}), {0, 2, 3, 1}));      // (B, H, d, L), over L
  Var vh = permute(reshape(kv[1], {B, L, H, dh}), {0, 2, 1, 3});               // (B, H, L, d)
  Var ctx = matmul(kt, vh);                                                    // (B, H, d, d)
  Var o = matmul(qh, ctx);                                                     // (B, H, S, d)

  // Default: o[b, h, s, e] -> [b, s, h d + e]. Parity: the (B, H, d, S) buffer read as (B, S, D).
  Var merged = reference_parity ? reshape(permute(o, {0, 1, 3, 2}), {B, S, dim})  // (B, S, D)
                                : reshape(permute(o, {0, 2, 1, 3}), {B, S, dim});
  return matmul(merged, t.param(wout));                                        // (B, S, D)
}

using gradcheck::Sample;
MNEMO_GRADCHECK("layers.linear_attention", [](Sample& s) {
  LinearSelfAttention& att = checked_layer<LinearSelfAttention>(s, 4, 2);
  Var slots = s.input({2, 3, 4});
  return att(slots, s.input({2, 2, 4}));
});
MNEMO_GRADCHECK("layers.linear_attention.parity", [](Sample& s) {
  LinearSelfAttention& att = checked_layer<LinearSelfAttention>(s, 4, 2, true);
  Var slots = s.input({2, 3, 4});
  return att(slots, s.input({2, 2, 4}));
});

}  // namespace mnemo::nn
