#include "layers/hyper_connections.h"

#include <vector>

#include "layers/testing.h"

namespace mnemo::nn {

namespace {
// `s` with one `extra` extent put before its last.
Shape insert_before_last(const Shape& s, int64_t extra) {
  Shape out;
  for (int i = 0; i + 1 < s.rank(); ++i) out.push_back(s[i]);
  out.push_back(extra);
  out.push_back(s[-1]);
  return out;
}
}  // namespace

Var expand_streams(Var x, int64_t S) {
  MNEMO_CHECK(S >= 1 && x.rank() >= 2 && x.rank() < kMaxDims,
              "[expand_streams] expected (B, ..., D) with at most " << kMaxDims - 1 << " dims and S >= 1, got "
                                                                    << x.shape() << " and S = " << S);
  if (S == 1) return x;
  return broadcast_to(reshape(x, insert_before_last(x.shape(), 1)), insert_before_last(x.shape(), S));
}

Var reduce_streams(Var H, int64_t S) {
  MNEMO_CHECK(S >= 1 && H.rank() >= 2 && (S == 1 || (H.rank() >= 3 && H.dim(-2) == S)),
              "[reduce_streams] expected (B, ..., " << S << ", D), got " << H.shape());
  if (S == 1) return H;
  return sum(H, -2);  // (B, ..., D)
}

HyperConnections::HyperConnections(Init& init, int64_t d, int64_t S, int64_t layer_index, bool parity)
    : dim(d), streams(S), reference_parity(parity) {
  MNEMO_CHECK(d >= 1 && S >= 1, "[hyper_connections] expected dim >= 1 and streams >= 1, got " << d << ", " << S);
  if (S == 1) return;
  init_stream = layer_index >= 0 ? layer_index % S : init.rng().randint(S);
  std::vector<double> alpha(size_t(S * (S + 1)), 0.0);  // row-major (S, S+1)
  for (int64_t s = 0; s < S; ++s) alpha[size_t(s * (S + 1) + 1 + s)] = 1.0;
  alpha[size_t(init_stream * (S + 1))] = 1.0;
  static_alpha = Param(Tensor::from({S, S + 1}, alpha, init.dtype()));
  static_beta = init.ones({S});
  dynamic_alpha_fn = init.zeros({d, S + 1});
  dynamic_alpha_scale = init.constant({}, 1e-2);
  dynamic_beta_fn = init.zeros({d});
  dynamic_beta_scale = init.constant({}, 1e-2);
  norm.emplace(init, d, RMSNorm::Style::l2_unit_offset);
}

HyperConnections::Width HyperConnections::width(Var H) const {
  const Shape& hs = H.shape();
  const int64_t S = streams;
  if (S == 1) {
    MNEMO_CHECK(H.rank() >= 2 && H.dim(-1) == dim,
                "[hyper_connections] expected (B, ..., " << dim << ") with one stream, got " << hs);
    return {H, H, {}, hs};
  }
  MNEMO_CHECK(H.rank() >= 3 && H.dim(-1) == dim && H.dim(-2) == S,
              "[hyper_connections] expected streams (B, ..., " << S << ", " << dim << "), got " << hs);
  const int64_t B = hs[0], T = hs.numel() / (B * S * dim);
  Tape& t = H.tape();
  Var h = reshape(H, {B, T, S, dim});
  Var hn = (*norm)(h);  // (B, T, S, D)
  // Both dynamic projections in one product, so hn is read once (the N = S+1 and N = 1
  // products cost a pass over hn each, forward and backward).
  Var fn = concat({t.param(dynamic_alpha_fn), reshape(t.param(dynamic_beta_fn), {dim, 1})}, 1);  // (D, S+2)
  Var dyn = tanh(matmul(hn, fn));                                                                    // (B, T, S, S+2)
  Var alpha = t.param(static_alpha) + t.param(dynamic_alpha_scale) * slice(dyn, 3, 0, S + 1);      // (B, T, S, S+1)
  Var beta = reshape(t.param(static_beta), {S, 1}) +
             t.param(dynamic_beta_scale) * slice(dyn, 3, S + 1, 1);  // (B, T, S, 1)
  // mix[j] = Σ_s alpha[s, j] H[s]: column 0 feeds the branch, columns 1..S the residuals. The
  // columns are split before the product so the (B, T, S+1, D) mix is never sliced.
  Shape in_shape(hs.dims().first(size_t(hs.rank() - 2)));
  in_shape.push_back(dim);
  Var branch_input = reshape(matmul(slice(alpha, 3, 0, 1), h, {.trans_a = true}), in_shape);  // (B, ..., D)
  // The pinned package returned the unmixed streams here, so alpha's columns 1..S had no effect.
  Var residuals = reference_parity ? h : matmul(slice(alpha, 3, 1, S), h, {.trans_a = true});  // (B, T, S, D)
  return {branch_input, residuals, beta, hs};
}

Var HyperConnections::depth(const Width& w, Var branch_out) const {
  MNEMO_CHECK(w.branch_input.defined() && branch_out.shape() == w.branch_input.shape(),
              "[hyper_connections] expected a branch output shaped as its input " << w.branch_input.shape()
                                                                                  << ", got " << branch_out.shape());
  if (streams == 1) return w.residuals + branch_out;
  const int64_t B = branch_out.dim(0), T = branch_out.value().numel() / (B * dim);
  Var out = w.residuals + w.beta * reshape(branch_out, {B, T, 1, dim});  // (B, T, S, D)
  return reshape(out, w.stream_shape);                                   // (B, ..., S, D)
}

using gradcheck::Sample;
namespace {
// Every parameter moved off its init: the zero dynamic weights and the one-hot alpha would
// otherwise leave gradient paths unexercised.
HyperConnections& perturbed(Sample& s, int64_t dim, int64_t S, bool parity) {
  return s.once<HyperConnections>(
      [&] {
        Init init(1234, DType::f64);
        auto hc = std::make_shared<HyperConnections>(init, dim, S, 1, parity);
        for (Param* p : params(*hc)) {
          double* v = p->value.data<double>();
          for (int64_t i = 0; i < p->value.numel(); ++i) v[i] += init.rng().uniform(-0.3, 0.3);
        }
        return hc;
      },
      [](HyperConnections& hc) { return params(hc); });
}

Var hyper_connected(Sample& s, bool parity) {
  const int64_t B = 2, S = 3, n = 2, D = 4;
  HyperConnections& hc = perturbed(s, D, S, parity);
  Var x = s.input({B, n, D});
  Var H = expand_streams(x, S) + s.input({B, n, S, D});  // (B, n, S, D), streams differ
  const HyperConnections::Width w = hc.width(H);
  return reduce_streams(hc.depth(w, tanh(w.branch_input)), S);  // (B, n, D)
}
}  // namespace

MNEMO_GRADCHECK("layers.hyper_connections", [](Sample& s) { return hyper_connected(s, false); });
MNEMO_GRADCHECK("layers.hyper_connections.parity", [](Sample& s) { return hyper_connected(s, true); });

}  // namespace mnemo::nn
