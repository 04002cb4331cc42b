#include "layers/norm.h"

#include <cmath>
#include <limits>

#include "layers/testing.h"

namespace mnemo::nn {

LayerNorm::LayerNorm(Init& init, int64_t d, Affine affine, double e) : dim(d), eps(e) {
  if (affine != Affine::none) weight = init.ones({d});
  if (affine == Affine::gain_and_bias) bias = init.zeros({d});
}

Var LayerNorm::operator()(Var x) const {
  MNEMO_CHECK(x.rank() >= 1 && x.dim(-1) == dim, "[layer_norm] expected (..., " << dim << "), got " << x.shape());
  Tape& t = x.tape();
  return layer_norm(x, weight.value.defined() ? t.param(weight) : Var{}, bias.value.defined() ? t.param(bias) : Var{},
                    eps);
}

RMSNorm::RMSNorm(Init& init, int64_t d, Style s, double e)
    : weight(s == Style::l2_unit_offset ? init.zeros({d}) : init.ones({d})), dim(d), style(s), eps(e) {
  if (eps < 0)  // nn.RMSNorm(eps=None): the machine epsilon of the dtype
    eps = init.dtype() == DType::f64 ? std::numeric_limits<double>::epsilon() : std::numeric_limits<float>::epsilon();
}

Var RMSNorm::operator()(Var x) const {
  MNEMO_CHECK(x.rank() >= 1 && x.dim(-1) == dim, "[rms_norm] expected (..., " << dim << "), got " << x.shape());
  Var g = x.tape().param(weight);
  switch (style) {
    case Style::torch: return rms_norm(x, g, eps);
    case Style::l2: return l2_normalize(x) * (g * std::sqrt(double(dim)));
    case Style::l2_unit_offset: return l2_normalize(x) * ((g + 1.0) * std::sqrt(double(dim)));
  }
  return x;
}

using gradcheck::Sample;
MNEMO_GRADCHECK("layers.layer_norm", [](Sample& s) { return checked_layer<LayerNorm>(s, 6)(s.input({2, 3, 6})); });
MNEMO_GRADCHECK("layers.layer_norm.bias_free", [](Sample& s) {
  return checked_layer<LayerNorm>(s, 5, LayerNorm::Affine::gain_only)(s.input({4, 5}));
});
MNEMO_GRADCHECK("layers.layer_norm.non_affine", [](Sample& s) {
  return checked_layer<LayerNorm>(s, 5, LayerNorm::Affine::none)(s.input({4, 5}));
});
MNEMO_GRADCHECK("layers.rms_norm", [](Sample& s) { return checked_layer<RMSNorm>(s, 6)(s.input({3, 6})); });
MNEMO_GRADCHECK("layers.rms_norm.l2", [](Sample& s) {
  return checked_layer<RMSNorm>(s, 6, RMSNorm::Style::l2)(s.input({3, 6}));
});
MNEMO_GRADCHECK("layers.rms_norm.l2_unit_offset", [](Sample& s) {
  return checked_layer<RMSNorm>(s, 6, RMSNorm::Style::l2_unit_offset)(s.input({3, 6}));
});

}  // namespace mnemo::nn
