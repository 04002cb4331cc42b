#include "layers/hyper_connections.h"

#include <cmath>
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
  const int64_t S = streams, D = dim;
  if (S == 1) {
    MNEMO_CHECK(H.rank() >= 2 && H.dim(-1) == D,
                "[hyper_connections] expected (B, ..., " << D << ") with one stream, got " << hs);
    return {H, H, {}, hs};
  }
  MNEMO_CHECK(H.rank() >= 3 && H.dim(-1) == D && H.dim(-2) == S,
              "[hyper_connections] expected streams (B, ..., " << S << ", " << D << "), got " << hs);
  const int64_t R = hs.numel() / (S * D);
  Tape& t = H.tape();
  // The norm feeds only the projection, so its gain (1 + gamma) sqrt(D) is folded into the
  // projection's rows and the 1 / ||h|| into the fused op: Hn is never materialised.
  Var gain = (t.param(norm->weight) + 1.0) * std::sqrt(double(D));                                // (D)
  Var fn = concat({t.param(dynamic_alpha_fn), reshape(t.param(dynamic_beta_fn), {D, 1})}, 1);     // (D, S+2)
  Var G = fn * reshape(gain, {D, 1});
  Var base = concat({t.param(static_alpha), reshape(t.param(static_beta), {S, 1})}, 1);          // (S, S+2)
  Var scale = concat({broadcast_to(reshape(t.param(dynamic_alpha_scale), {1}), {S + 1}),
                      reshape(t.param(dynamic_beta_scale), {1})},
                     0);                                                                           // (S+2)
  Var h = reshape(H, {R, S, D});
  Var packed = hyper_width(h, G, base, scale);  // (R, D + S (S+2)): branch input, coefficients
  Shape in_shape(hs.dims().first(size_t(hs.rank() - 2)));
  in_shape.push_back(D);
  return {reshape(slice(packed, 1, 0, D), in_shape), h, reshape(slice(packed, 1, D, S * (S + 2)), {R, S, S + 2}), hs};
}

Var HyperConnections::depth(const Width& w, Var branch_out) const {
  MNEMO_CHECK(w.branch_input.defined() && branch_out.shape() == w.branch_input.shape(),
              "[hyper_connections] expected a branch output shaped as its input " << w.branch_input.shape()
                                                                                  << ", got " << branch_out.shape());
  if (streams == 1) return w.streams + branch_out;
  const int64_t R = w.streams.dim(0);
  // The pinned package added the branch to the unmixed streams, so alpha's columns 1..S had no effect.
  return reshape(hyper_depth(w.streams, w.coef, reshape(branch_out, {R, dim}), !reference_parity), w.stream_shape);
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
