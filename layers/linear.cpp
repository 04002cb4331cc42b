#include "layers/linear.h"

#include "layers/testing.h"

namespace mnemo::nn {

Linear::Linear(Init& init, int64_t in, int64_t out, bool with_bias)
    : weight(init.fan_in_uniform({out, in}, in)), d_in(in), d_out(out) {
  if (with_bias) bias = init.fan_in_uniform({out}, in);
}

Var Linear::operator()(Var x, ParamUse use) const {
  MNEMO_CHECK(x.rank() >= 1 && x.dim(-1) == d_in,
              "[linear] expected input (..., " << d_in << "), got " << x.shape());
  Tape& tape = x.tape();
  Var y = matmul(x, tape.param(weight, use), {.trans_b = true});  // (..., D_out)
  return has_bias() ? y + tape.param(bias, use) : y;
}

using gradcheck::Sample;
MNEMO_GRADCHECK("layers.linear", [](Sample& s) {
  Linear& l = checked_layer<Linear>(s, 3, 4);
  return l(s.input({2, 5, 3}));
});
MNEMO_GRADCHECK("layers.linear.no_bias", [](Sample& s) {
  Linear& l = checked_layer<Linear>(s, 4, 2, false);
  return l(s.input({3, 4}));
});

}  // namespace mnemo::nn
