#include "layers/gru_gate.h"

#include "layers/testing.h"

namespace mnemo::nn {

// PyTorch draws the four tensors in this order, each U(+-1/sqrt(hidden)).
GRUCell::GRUCell(Init& init, int64_t d)
    : weight_ih(init.fan_in_uniform({3 * d, d}, d)),
      weight_hh(init.fan_in_uniform({3 * d, d}, d)),
      bias_ih(init.fan_in_uniform({3 * d}, d)),
      bias_hh(init.fan_in_uniform({3 * d}, d)),
      dim(d) {}

Var GRUCell::operator()(Var input, Var hidden) const {
  MNEMO_CHECK(input.rank() >= 2 && input.dim(-1) == dim && hidden.shape() == input.shape(),
              "[gru_cell] expected input and hidden of one shape (..., " << dim << "), got " << input.shape()
                                                                         << " and " << hidden.shape());
  Tape& t = input.tape();
  Var gi = matmul(input, t.param(weight_ih), {.trans_b = true}) + t.param(bias_ih);   // (..., 3D)
  Var gh = matmul(hidden, t.param(weight_hh), {.trans_b = true}) + t.param(bias_hh);  // (..., 3D)
  const int64_t parts[] = {dim, dim, dim};
  const std::vector<Var> i = split(gi, -1, parts), h = split(gh, -1, parts);  // r, z, n: (..., D) each
  Var r = sigmoid(i[0] + h[0]);   // (..., D)
  Var z = sigmoid(i[1] + h[1]);   // (..., D)
  Var n = tanh(i[2] + r * h[2]);  // (..., D)
  return n + z * (hidden - n);    // = (1 - z) n + z hidden, one op fewer
}

GRUGate::GRUGate(Init& init, int64_t d, GRUGateOptions o) : gru(init, d) {
  if (o.gate_bias_init != 0.0) {
    std::vector<double> b = gru.bias_hh.value.to_vector();  // rows r, z, n
    for (int64_t k = d; k < 2 * d; ++k) b[size_t(k)] += o.gate_bias_init;
    gru.bias_hh.value = Tensor::from({3 * d}, b, init.dtype());
  }
  if (o.mogrify) mogrify.emplace(init, d, o.mogrifier);
}

Var GRUGate::operator()(Var x, Var y) const {
  const Mogrified m = gate_inputs("gru_gate", gru.dim, mogrify, x, y);
  return gru(/*input=*/m.y, /*hidden=*/m.x);
}

using gradcheck::Sample;
MNEMO_GRADCHECK("layers.gru_gate", [](Sample& s) {
  GRUGate& g = checked_layer<GRUGate>(s, 4);
  return g(s.input({2, 3, 4}), s.input({2, 3, 4}));
});
MNEMO_GRADCHECK("layers.gru_gate.mogrify", [](Sample& s) {
  GRUGate& g = checked_layer<GRUGate>(s, 8, GRUGateOptions{.gate_bias_init = 1.0, .mogrify = true});
  return g(s.input({2, 3, 8}), s.input({2, 3, 8}));
});

}  // namespace mnemo::nn
