#include "layers/mogrifier.h"

#include "layers/testing.h"

namespace mnemo::nn {

namespace {
int64_t checked_rank(int64_t dim, const MogrifierOptions& o) {
  const int64_t r = o.rank > 0 ? o.rank : dim / 4;
  MNEMO_CHECK(dim >= 1 && r >= 1 && r <= dim && o.iters >= 1,
              "[mogrifier] expected dim >= 1, 1 <= rank <= dim and iters >= 1, got dim " << dim << ", rank " << r
                                                                                         << ", iters " << o.iters);
  return r;
}
}  // namespace

Mogrifier::Mogrifier(Init& init, int64_t d, MogrifierOptions o)
    : Q(init, d, checked_rank(d, o), o.bias), dim(d), rank(checked_rank(d, o)), iters(o.iters) {
  if (iters > 1) R.emplace(init, d, rank, o.bias);  // Q's weights are drawn first, as in the package
}

Mogrified Mogrifier::operator()(Var x, Var y) const {
  MNEMO_CHECK(x.rank() >= 2 && x.dim(-1) == dim && y.shape() == x.shape(),
              "[mogrifier] expected x and y of one shape (..., " << dim << "), got " << x.shape() << " and "
                                                                  << y.shape());
  for (int i = 0; i < iters; ++i) {
    if (i % 2 == 0)
      y = 2.0 * sigmoid(Q(x)) * y;  // (..., D)
    else
      x = 2.0 * sigmoid((*R)(y)) * x;  // (..., D)
  }
  return {x, y};
}

Mogrified gate_inputs(const char* gate, int64_t dim, const std::optional<Mogrifier>& mogrify, Var x, Var y) {
  MNEMO_CHECK(x.rank() >= 2 && x.dim(-1) == dim && y.shape() == x.shape(),
              "[" << gate << "] expected residual and branch output of one shape (..., " << dim << "), got "
                  << x.shape() << " and " << y.shape());
  return mogrify ? (*mogrify)(x, y) : Mogrified{x, y};
}

using gradcheck::Sample;
MNEMO_GRADCHECK("layers.mogrifier", [](Sample& s) {
  Mogrifier& m = checked_layer<Mogrifier>(s, 8, MogrifierOptions{.bias = true});
  const Mogrified out = m(s.input({2, 3, 8}), s.input({2, 3, 8}));
  return concat({out.x, out.y}, -1);
});

}  // namespace mnemo::nn
