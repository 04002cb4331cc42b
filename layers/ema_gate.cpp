#include "layers/ema_gate.h"

#include "layers/testing.h"

namespace mnemo::nn {

EMAGate::EMAGate(Init& init, int64_t d) : learned_ema_beta(init.normal({d}, 0.1)), dim(d) {}

Var EMAGate::operator()(Var s, Var z) const {
  MNEMO_CHECK(s.rank() >= 1 && s.dim(-1) == dim && z.shape() == s.shape(),
              "[ema_gate] expected state and update of one shape (..., " << dim << "), got " << s.shape() << " and "
                                                                          << z.shape());
  Var g = sigmoid(s.tape().param(learned_ema_beta));  // (D)
  return s + g * (z - s);                              // = g z + (1 - g) s
}

using gradcheck::Sample;
MNEMO_GRADCHECK("layers.ema_gate", [](Sample& s) {
  EMAGate& g = checked_layer<EMAGate>(s, 5);
  return g(s.input({2, 3, 5}), s.input({2, 3, 5}));
});

}  // namespace mnemo::nn
