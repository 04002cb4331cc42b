#include "layers/nbrc_gate.h"

#include <cmath>

#include "autograd/ops/tensor_math.h"
#include "layers/testing.h"

namespace mnemo::nn {

NBRCCell::NBRCCell(Init& init, int64_t d, double keep_init)
    : Ua(init, d, d), Wa(init, d, d), Uc(init, d, d), Wc(init, d, d), U(init, d, d), dim(d) {
  MNEMO_CHECK(keep_init > 0 && keep_init < 1, "[nbrc_cell] the initial keep gate must be in (0, 1), got " << keep_init);
  if (keep_init != 0.5)
    Uc.bias.value = tm::unary(kernels::Unary::affine, Uc.bias.value, 1.0, std::log(keep_init / (1 - keep_init)));
}

// MemXL clones the weights at each use so that optimizer steps between segments do not change what an
// older segment's backward sees (MemXL P3); here that is the tape's business, not the cell's.
Var NBRCCell::operator()(Var input, Var hidden) const {
  MNEMO_CHECK(input.rank() >= 2 && input.dim(-1) == dim && hidden.shape() == input.shape(),
              "[nbrc_cell] expected input and hidden of one shape (..., " << dim << "), got " << input.shape()
                                                                          << " and " << hidden.shape());
  // a = 1 + tanh(Ua y + Wa x) in (0, 2);  c = sigmoid(Uc y + Wc x);  cand = tanh(U y + a x);
  // x' = c x + (1 - c) cand: the elementwise part in one op
  return nbrc(Ua(input) + Wa(hidden), Uc(input) + Wc(hidden), U(input), hidden);
}

NBRCGate::NBRCGate(Init& init, int64_t d, NBRCGateOptions o) : gru(init, d) {
  if (o.mogrify) mogrify.emplace(init, d, o.mogrifier);
}

Var NBRCGate::operator()(Var x, Var y) const {
  const Mogrified m = gate_inputs("nbrc_gate", gru.dim, mogrify, x, y);
  return gru(/*input=*/m.y, /*hidden=*/m.x);
}

using gradcheck::Sample;
MNEMO_GRADCHECK("layers.nbrc_gate", [](Sample& s) {
  NBRCGate& g = checked_layer<NBRCGate>(s, 4);
  return g(s.input({2, 3, 4}), s.input({2, 3, 4}));
});
MNEMO_GRADCHECK("layers.nbrc_gate.mogrify", [](Sample& s) {
  NBRCGate& g = checked_layer<NBRCGate>(s, 4, NBRCGateOptions{.mogrify = true});
  return g(s.input({3, 4}), s.input({3, 4}));
});

}  // namespace mnemo::nn
