// conv1d with kernel = stride (the memory-compression op), as a composite: each output
// step sees one disjoint window of k steps, so the windows are rows of a matrix and the
// convolution is one matmul per group.
//   y[b, t, o] = bias[o] + sum_{c, j} W[o, c, j] x[b, t k + j, c]
// x (B, T, C_in) -> (B T/k, k C_in) is a free view; W (C_out, C_in/g, k) is permuted to
// (C_out, k, C_in/g) to match it. Groups split the channels as in PyTorch.
#include "autograd/gradcheck/gradcheck.h"
#include "autograd/ops/ops.h"

namespace mnemo {

Var conv1d(Var x, Var weight, Var bias, int64_t groups) {
  MNEMO_CHECK(x.rank() == 3, "[conv1d] input must be (B, T, C_in), got " << x.shape());
  MNEMO_CHECK(weight.rank() == 3, "[conv1d] weight must be (C_out, C_in/groups, k), got " << weight.shape());
  const int64_t B = x.dim(0), T = x.dim(1), C_in = x.dim(2);
  const int64_t C_out = weight.dim(0), k = weight.dim(2);
  MNEMO_CHECK(groups >= 1 && C_in % groups == 0 && C_out % groups == 0 && weight.dim(1) == C_in / groups,
              "[conv1d] input " << x.shape() << ", weight " << weight.shape() << " and groups " << groups
                                << " do not fit (C_in and C_out must divide by groups)");
  MNEMO_CHECK(k >= 1 && T % k == 0, "[conv1d] length " << T << " is not a multiple of the kernel size " << k);
  MNEMO_CHECK(!bias.defined() || bias.shape() == Shape{C_out},
              "[conv1d] bias must be (" << C_out << ",), got " << bias.shape());
  const int64_t cin = C_in / groups, cout = C_out / groups, n = B * (T / k);

  std::vector<Var> outs;
  for (int64_t g = 0; g < groups; ++g) {
    Var xg = groups == 1 ? x : slice(x, 2, g * cin, cin);                   // (B, T, cin)
    Var wg = groups == 1 ? weight : slice(weight, 0, g * cout, cout);       // (cout, cin, k)
    Var w2 = reshape(permute(wg, {0, 2, 1}), {cout, k * cin});              // (cout, k cin)
    outs.push_back(matmul(reshape(xg, {n, k * cin}), w2, {.trans_b = true}));  // (n, cout)
  }
  Var y = groups == 1 ? outs[0] : concat(outs, 1);                         // (n, C_out)
  if (bias.defined()) y = y + bias;
  return reshape(y, {B, T / k, C_out});
}

using gradcheck::Sample;
MNEMO_GRADCHECK("conv1d", [](Sample& s) { return conv1d(s.input({2, 6, 3}), s.input({4, 3, 3}), s.input({4})); });
MNEMO_GRADCHECK("conv1d.groups", [](Sample& s) { return conv1d(s.input({1, 4, 4}), s.input({6, 2, 2}), s.input({6}), 2); });
MNEMO_GRADCHECK("conv1d.no_bias", [](Sample& s) { return conv1d(s.input({2, 4, 2}), s.input({3, 2, 4}), Var{}); });

}  // namespace mnemo
