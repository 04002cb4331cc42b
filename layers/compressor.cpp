// Compressor: conv1d(kernel = stride = c) over time after padding L up to a multiple of c with
// zeros on the oldest side; y (B, ceil(L/c), C). Parity mode pads by L mod c (CT P3) and lets
// the stride drop the newest leftovers; drop_remainder trims the oldest L mod c (BRT).
#include "layers/compressor.h"

#include "layers/testing.h"

namespace mnemo::nn {

Compressor::Compressor(Init& init, int64_t ch, int64_t r, int64_t g, bool with_bias)
    : channels(ch), ratio(r), groups(g) {
  MNEMO_CHECK(ch >= 1 && r >= 1 && g >= 1 && ch % g == 0,
              "[compressor] expected channels, ratio, groups >= 1 with groups dividing channels, got "
                  << ch << ", " << r << ", " << g);
  const int64_t fan_in = ch / g * r;  // PyTorch Conv1d: in_channels / groups * kernel_size
  weight = init.fan_in_uniform({ch, ch / g, r}, fan_in);
  if (with_bias) bias = init.fan_in_uniform({ch}, fan_in);
}

int64_t Compressor::out_len(int64_t len) const {
  const int64_t rem = len % ratio;
  if (reference_parity) return (len + rem) / ratio;
  if (drop_remainder) return len / ratio;
  return (len + ratio - 1) / ratio;
}

Var Compressor::operator()(Var x, ParamUse use) const {
  MNEMO_CHECK(x.rank() == 3 && x.dim(2) == channels,
              "[compressor] expected evicted (B, L, " << channels << "), got " << x.shape());
  const int64_t L = x.dim(1), rem = L % ratio;
  Var xp = x;  // (B, L', C), L' a multiple of c after the branch
  if (reference_parity) {
    xp = rem ? pad(x, 1, rem, 0) : x;  // (B, L + rem, C)
    const int64_t whole = xp.dim(1) / ratio * ratio;
    if (whole != xp.dim(1)) xp = slice(xp, 1, 0, whole);  // PyTorch's strided conv ignores the tail
  } else if (drop_remainder) {
    if (rem) xp = slice(x, 1, rem, L - rem);
  } else if (rem) {
    xp = pad(x, 1, ratio - rem, 0);
  }
  Tape& t = x.tape();
  return conv1d(xp, t.param(weight, use), has_bias() ? t.param(bias, use) : Var{}, groups);
}

using gradcheck::Sample;
MNEMO_GRADCHECK("layers.compressor", [](Sample& s) {
  return checked_layer<Compressor>(s, 3, 2)(s.input({2, 5, 3}));  // 5 slots: one zero of padding
});
MNEMO_GRADCHECK("layers.compressor.grouped", [](Sample& s) {
  return checked_layer<Compressor>(s, 4, 2, 2)(s.input({2, 4, 4}));
});

}  // namespace mnemo::nn
