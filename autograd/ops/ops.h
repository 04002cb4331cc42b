// The public op API: every op, one line each, grouped by the file that defines it.
// Each public function checks shapes and dtypes and throws mnemo::Error("[op] ...").
// Broadcasting follows NumPy: shapes align on the right; extents must match or be 1.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "autograd/tape.h"

namespace mnemo {

// ---- elementwise.cpp: broadcasting arithmetic -----------------------------------------
Var add(Var a, Var b);
Var sub(Var a, Var b);
Var mul(Var a, Var b);
Var div(Var a, Var b);

// ---- activations.cpp: unary maps, scalar ops included --------------------------------
Var affine(Var x, double alpha, double beta);  // alpha * x + beta
Var pow(Var x, double p);                      // x ^ p
Var rdiv(double c, Var x);                     // c / x
Var neg(Var x);

inline Var operator+(Var a, Var b) { return add(a, b); }
inline Var operator-(Var a, Var b) { return sub(a, b); }
inline Var operator*(Var a, Var b) { return mul(a, b); }
inline Var operator/(Var a, Var b) { return div(a, b); }
inline Var operator-(Var x) { return neg(x); }
inline Var operator+(Var x, double c) { return affine(x, 1.0, c); }
inline Var operator+(double c, Var x) { return affine(x, 1.0, c); }
inline Var operator-(Var x, double c) { return affine(x, 1.0, -c); }
inline Var operator-(double c, Var x) { return affine(x, -1.0, c); }
inline Var operator*(Var x, double c) { return affine(x, c, 0.0); }
inline Var operator*(double c, Var x) { return affine(x, c, 0.0); }
inline Var operator/(Var x, double c) { return affine(x, 1.0 / c, 0.0); }
inline Var operator/(double c, Var x) { return rdiv(c, x); }

Var exp(Var x);
Var log(Var x);
Var sqrt(Var x);
Var rsqrt(Var x);
Var tanh(Var x);
Var sigmoid(Var x);
Var relu(Var x);
Var gelu(Var x);       // exact: x/2 (1 + erf(x / sqrt 2))
Var gelu_tanh(Var x);  // tanh approximation
Var silu(Var x);
Var softplus(Var x);
Var square(Var x);
// Gated GELU: x (..., 2I) = [a, g] -> a * gelu(g) (..., I); activate_first: gelu(a) * g.
Var geglu(Var x, bool activate_first = false);
// The nBRC cell's elementwise part in one kernel (layers/nbrc_gate.h), all four of one shape:
// a = 1 + tanh(ga), c = sigmoid(gc), v = tanh(gu + a h), result v + c (h - v).
Var nbrc(Var ga, Var gc, Var gu, Var h);
Var abs(Var x);

// ---- reduce.cpp ----------------------------------------------------------------------
Var sum(Var x, int axis, bool keepdim = false);
Var mean(Var x, int axis, bool keepdim = false);
Var max(Var x, int axis, bool keepdim = false);  // gradient to the first maximum
Var sum(Var x);                                   // all elements -> shape ()
Var mean(Var x);

// ---- matmul.cpp ----------------------------------------------------------------------
struct MatmulOpts {
  bool trans_a = false;
  bool trans_b = false;
};
// a: (..., M, K) [(..., K, M) with trans_a]; b: (K, N) or (..., K, N) with a's batch
// dims [(N, K) / (..., N, K) with trans_b]. Result (..., M, N).
Var matmul(Var a, Var b, MatmulOpts opts = {});

// ---- shape.cpp -----------------------------------------------------------------------
Var reshape(Var x, const Shape& shape);                   // free: shares storage
Var permute(Var x, std::span<const int> perm);            // a copy
Var transpose(Var x, int axis0, int axis1);
Var broadcast_to(Var x, const Shape& shape);
Var concat(std::span<const Var> xs, int axis);
Var slice(Var x, int axis, int64_t start, int64_t length);
std::vector<Var> split(Var x, int axis, std::span<const int64_t> sizes);
Var pad(Var x, int axis, int64_t before, int64_t after, double value = 0.0);
Var index_select(Var x, int axis, const Tensor& index);   // index: i32 (n,)
// index_select where an entry of -1 selects zeros (and takes no gradient): a gather with
// holes, without padding x with a zero slot first.
Var index_select_or_zero(Var x, int axis, const Tensor& index);
Var embedding(Var table, const Tensor& tokens);           // table (V, D), tokens i32 (...) -> (..., D)

inline Var permute(Var x, std::initializer_list<int> perm) {
  return permute(x, std::span<const int>(perm.begin(), perm.size()));
}
inline Var concat(std::initializer_list<Var> xs, int axis) {
  return concat(std::span<const Var>(xs.begin(), xs.size()), axis);
}

// ---- softmax.cpp: over the last axis. mask: u8 broadcastable to x, 1 = may attend. -----
// A row with nothing allowed gives zeros (softmax) or -inf (log_softmax), never NaN.
Var softmax(Var x, const Tensor& mask = {});
Var log_softmax(Var x, const Tensor& mask = {});

// ---- loss.cpp ------------------------------------------------------------------------
enum class Reduction : uint8_t { mean, sum, none };
// logits (..., V); targets i32 (...). mean averages over targets != ignore_index (0 if none).
Var cross_entropy(Var logits, const Tensor& targets, int32_t ignore_index = -100, Reduction r = Reduction::mean);
Var mse_loss(Var a, Var b);  // mean((a - b)^2)

// ---- norm.cpp: over the last axis; gain and bias may be undefined Vars ----------------
Var layer_norm(Var x, Var gain, Var bias, double eps = 1e-5);
Var rms_norm(Var x, Var gain, double eps);
Var l2_normalize(Var x, double eps = 1e-12);  // x / max(||x||, eps), like torch F.normalize

// ---- hyper.cpp: fused hyper-connection mixing (layers/hyper_connections.h) ------------
// H (R, S, D): R rows of S streams; G (D, S+2) projects a stream onto its S+2 coefficient
// columns (0: branch, 1..S: residuals, S+1: beta); base (S, S+2); scale (S+2). Per row, stream s:
//   coef[s, c] = base[s, c] + scale[c] tanh(<H[s], G[:, c]> / max(||H[s]||, eps))
// Result (R, D + S (S+2)): the branch input sum_s coef[s, 0] H[s], then coef.
Var hyper_width(Var H, Var G, Var base, Var scale, double eps = 1e-12);
// coef (R, S, S+2), b (R, D) -> (R, S, D): out[j] = sum_s coef[s, 1+j] H[s] + coef[j, S+1] b,
// or H[j] + coef[j, S+1] b without mixing.
Var hyper_depth(Var H, Var coef, Var b, bool mix = true);

// ---- random.cpp ------------------------------------------------------------------------
// Zeroes each element with probability p and scales the rest by 1/(1-p); the mask is a
// pure function of (seed, index). Identity when !training or p == 0.
Var dropout(Var x, double p, uint64_t seed, bool training);

// ---- select.cpp ----------------------------------------------------------------------
Var where(const Tensor& cond, Var a, Var b);                // cond u8; all three broadcast
Var masked_fill(Var x, const Tensor& mask, double value);  // value where mask is 1

// ---- conv.cpp ------------------------------------------------------------------------
// 1-D convolution with kernel = stride (the compression op): x (B, T, C_in) with T a
// multiple of k, weight (C_out, C_in / groups, k) as PyTorch's Conv1d, bias (C_out) or
// undefined. Result (B, T / k, C_out).
Var conv1d(Var x, Var weight, Var bias, int64_t groups = 1);

// ---- scan.cpp ------------------------------------------------------------------------
Var cumsum(Var x, int axis);

// ---- attention.cpp: fused multi-head attention -------------------------------------------
// q (B, H, Tq, d); k, v (B, Hk, Tk, d), Hk = H or 1 (one shared key/value head).
// Keys [0, prefix) (memories, persistent slots) are visible to every query. Over the other
// keys a query row sees, with queries aligned to the end of the keys (bottom-right):
//   causal: keys up to its own position; window W: only the last W of those (0 = all);
//   the first read_rows rows (memory read slots) see only the first read_rows keys;
//   the last write_rows rows (memory write slots) see every key.
// key_padding (B, Tk) and mask (broadcast to (B, H, Tq, Tk)) are u8, 1 = may attend.
// bias (H, Tq, Tk) or (B, H, Tq, Tk) adds to the logits and gets a gradient. null_k/null_v
// (Hk, d): a learned slot before all keys that every query sees. scale defaults to
// 1/sqrt(d) and is honoured. A row that sees no key outputs zeros. dropout > 0 drops
// attention probabilities (seeded by dropout_seed): that runs the composite path
// (matmul, masked softmax, dropout, matmul), which holds the Tq x Tk probabilities.
// band_bias adds to the logits too, read in place through Transformer-XL's relative shift.
//
// A logit term as a band (H, Tq, n) or (B, H, Tq, n): key j of query i adds
// scale * band[.., i, j - i + shift] when j >= from and that column is in [0, n), else 0. The
// fused kernels read it (and write its gradient) through that index: nothing Tq x Tk is built.
struct BandBias {
  Var band = {};
  int64_t shift = 0, from = 0;
  double scale = 1;
  bool defined() const { return band.defined(); }
};
Var band_to_dense(const BandBias& b, int64_t Tk);  // (.., Tq, Tk), 0 outside the band

struct AttentionSpec {  // "= {}" everywhere keeps designated initialisers free of warnings
  std::optional<double> scale = {};
  int64_t prefix = 0;
  bool causal = false;
  int64_t window = 0;
  int64_t read_rows = 0, write_rows = 0;
  Tensor key_padding = {};
  Tensor mask = {};
  Var bias = {};
  BandBias band_bias = {};
  Var null_k = {}, null_v = {};
  double dropout = 0;
  uint64_t dropout_seed = 0;
};
Var attention(Var q, Var k, Var v, const AttentionSpec& spec = {});
// FLOPs of the attention products whose backward has run since the last reset, for
// model-FLOP rates: 2 matmuls of 2 FLOPs per visible (query, key) pair and head dim in the
// forward, twice that in the backward. Key padding and dense masks are not subtracted; a
// forward that is never differentiated (replay's first pass, evaluation) counts nothing,
// nor does the composite dropout path.
int64_t attention_flops();
void reset_attention_flops();

// ---- grad.cpp: gradient boundaries ---------------------------------------------------------
Var stop_gradient(Var x);                 // same value; no gradient flows back
Var scale_gradient(Var x, double alpha);  // same value; gradient multiplied by alpha

}  // namespace mnemo
