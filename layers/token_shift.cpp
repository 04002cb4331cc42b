#include "layers/token_shift.h"

#include <vector>

#include "layers/testing.h"

namespace mnemo::nn {

Var token_shift(Var x, int64_t n_prefix, int64_t n_suffix) {
  MNEMO_CHECK(x.rank() >= 2, "[token_shift] expected x (..., T, D), got " << x.shape());
  const int64_t T = x.dim(-2), D = x.dim(-1), h = (D + 1) / 2;
  MNEMO_CHECK(n_prefix >= 0 && n_suffix >= 0 && n_prefix + n_suffix <= T,
              "[token_shift] expected n_prefix + n_suffix <= T = " << T << ", got " << n_prefix << " + " << n_suffix);
  const int64_t n = T - n_prefix - n_suffix;
  if (n == 0 || D - h == 0) return x;
  Var main = slice(x, -2, n_prefix, n);                                            // (..., n, D)
  Var shifted = pad(slice(slice(main, -1, h, D - h), -2, 0, n - 1), -2, 1, 0);      // (..., n, D - h)
  Var y = concat({slice(main, -1, 0, h), shifted}, -1);                            // (..., n, D)
  if (n_prefix == 0 && n_suffix == 0) return y;
  std::vector<Var> parts;
  if (n_prefix > 0) parts.push_back(slice(x, -2, 0, n_prefix));
  parts.push_back(y);
  if (n_suffix > 0) parts.push_back(slice(x, -2, T - n_suffix, n_suffix));
  return concat(parts, -2);
}

using gradcheck::Sample;
MNEMO_GRADCHECK("layers.token_shift", [](Sample& s) { return token_shift(s.input({2, 7, 5}), 2, 1); });

}  // namespace mnemo::nn
