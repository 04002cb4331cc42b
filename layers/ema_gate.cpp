#include "layers/ema_gate.h"

#include <cmath>

#include "autograd/ops/tensor_math.h"
#include "layers/testing.h"

namespace mnemo::nn {

EMAGate::EMAGate(Init& init, int64_t d, double initial_gate) : learned_ema_beta(init.normal({d}, 0.1)), dim(d) {
  MNEMO_CHECK(initial_gate > 0 && initial_gate < 1,
              "[ema_gate] the initial gate must be in (0, 1), got " << initial_gate);
  // The same draws for every g0: only their mean moves (g0 = 0.5 leaves them as they were).
  if (initial_gate != 0.5) learned_ema_beta.value = tm::unary(kernels::Unary::affine, learned_ema_beta.value, 1.0,
                                                                std::log(initial_gate / (1 - initial_gate)));
}

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
