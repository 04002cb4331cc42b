// The kernel interface: every kernel signature and its slot, and nothing else.
// Kernels are arithmetic on raw pointers and sizes: no Tensor, no Eigen, no autograd.
// Each slot holds one float implementation per backend (the reference, plain loops, is
// mandatory; cpu, onednn and cuda are optional fast ones) and the reference's double
// implementation, which gradient checks run and every other backend is tested against.
// Backends fill their slots in one readable register.cpp each; init() calls them and
// checks coverage.
#pragma once

#include <algorithm>
#include <cstdint>
#if __cplusplus >= 202002L  // nvcc 11.8 compiles the CUDA backend as C++17, which has no std::span
#include <span>
#endif

#include "common/hd.h"

namespace mnemo::kernels {

enum class Backend : uint8_t { reference, cpu, onednn, cuda };
inline constexpr int kNumBackends = 4;
const char* backend_name(Backend b);

inline constexpr int kMaxDims = 6;

// Which float kernel a CPU tensor runs: oneDNN where it fills the slot and is preferred, else
// the fast cpu kernel, else the reference; the reference always when forced. Double always
// runs the reference. MNEMO_BACKEND in the environment, read once by init(), sets the same
// switches: "reference" forces the reference, "cpu" turns oneDNN off, "auto" (or unset)
// leaves the defaults; anything else is an error. Setters called later override it.
void set_force_reference(bool on);  // for debugging: every float kernel on the plain loops
bool force_reference();
void set_prefer_onednn(bool on);    // default: on when built
bool prefer_onednn();
bool onednn_built();

// Type-erased view of a slot, for coverage checks and the cross-backend test.
struct KernelSlot {
  const char* name;
  bool filled[kNumBackends] = {};
  bool has_f64 = false;
  constexpr explicit KernelSlot(const char* n) : name(n) {}
};

template <template <class> class Sig>
struct Kernel : KernelSlot {
  Sig<double>* f64 = nullptr;

  constexpr explicit Kernel(const char* n) : KernelSlot(n) {}
  void set(Backend b, Sig<float>* fn) { f32_[int(b)] = fn; filled[int(b)] = fn != nullptr; }
  void set_f64(Sig<double>* fn) { f64 = fn; has_f64 = fn != nullptr; }
  Sig<float>* get(Backend b) const { return f32_[int(b)]; }
  Sig<float>* cpu_f32() const {  // the rule above
    if (force_reference()) return get(Backend::reference);
    if (prefer_onednn() && get(Backend::onednn)) return get(Backend::onednn);
    return get(Backend::cpu) ? get(Backend::cpu) : get(Backend::reference);
  }

 private:
  Sig<float>* f32_[kNumBackends] = {};
};

// ---- descriptors shared by several kernels ----------------------------------------

// A strided walk over `dims` (row-major). strides[k] are element strides of operand k
// over those dims; 0 on a dim means the operand is broadcast along it.
struct Strided {
  int rank = 0;
  int64_t dims[kMaxDims] = {};
  int64_t strides[3][kMaxDims] = {};
};

// C = alpha * op(A) op(B) + beta * C, for `batch` matrices at the given element strides.
// A stride of 0 shares that operand across the batch.
struct GemmDesc {
  bool trans_a = false, trans_b = false;
  int64_t M = 0, N = 0, K = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  int64_t batch = 1, stride_a = 0, stride_b = 0, stride_c = 0;
  double alpha = 1, beta = 0;
  // Set on an operand that is a weight (id != 0) while GEMMs run in bf16: its bf16 copy may
  // be kept and reused while (id, version) stays the same (kernels/precision.h).
  struct WeightTag {
    uint64_t id = 0, version = 0;
  } tag_a, tag_b;
};

// Copies `len` rows along the middle axis of (outer, n, inner) views:
// dst[o, dst_off + i, :] (+)= src[o, src_off + i, :] for i < len.
struct AxisCopy {
  int64_t outer = 1, inner = 1;
  int64_t src_n = 0, src_off = 0;
  int64_t dst_n = 0, dst_off = 0;
  int64_t len = 0;
  bool accumulate = false;
};

// Fused attention over q (B, H, Tq, d) and k, v (B, Hk, Tk, d) with Hk = H or 1 (one
// shared head). Keys [0, prefix) are visible to every query; over the other keys ("main"
// keys, Tm = Tk - prefix) a query row i sees an interval:
//   i < read_rows                -> main keys [0, read_rows)          (memory read slots)
//   i >= Tq - write_rows         -> every main key                   (memory write slots)
//   otherwise, at position p = i + Tm - Tq (bottom-right aligned):
//     causal: [p - window + 1, p]; not causal: [p - window + 1, p + window - 1]; window 0 = unbounded.
// key_pad (B, Tk) and mask (strides over B, H, Tq, Tk) further remove keys (1 = keep).
// A row that sees nothing outputs 0 with lse = -inf and gets no gradient.
struct AttentionDesc {
  int64_t B = 0, H = 0, Hk = 0, Tq = 0, Tk = 0, d = 0;
  double scale = 1;
  int64_t prefix = 0;
  bool causal = false;
  int64_t window = 0;
  int64_t read_rows = 0, write_rows = 0;
  const uint8_t* key_pad = nullptr;
  const uint8_t* mask = nullptr;
  int64_t mask_strides[4] = {};
  bool bias_per_batch = false;  // bias (B, H, Tq, Tk) instead of (H, Tq, Tk)
  // bias_band > 0: the bias is a band (H or B H, Tq, bias_band) read through a shifted index,
  // Transformer-XL's relative shift without a Tq x Tk tensor: key j of row i adds
  // bias[.., i, j - i + bias_shift] when j >= bias_from and that column is inside the band,
  // 0 otherwise (attention_band_keys); the bias gradient is written to the same columns.
  int64_t bias_band = 0, bias_shift = 0, bias_from = 0;
  // The bias enters as bias_scale * bias (and its gradient as bias_scale * dS), so a product
  // such as scale q R^T needs no pass of its own to scale it. 1 leaves a bias exactly as is.
  double bias_scale = 1;
  // The tile products (Q K^T, P V and the backward's four) on bf16 operands with f32 accumulation;
  // softmax, masks, bias and sums stay f32. Set under train.precision: bf16; read by the cpu backend's
  // float kernels (on a CPU without avx512_bf16 they stay f32) and the CUDA attention kernels.
  bool bf16 = false;
};

// The interval [lo, hi] of main keys (after the prefix, 0-based) that query row i sees under
// the description's rules, padding and dense masks aside; empty when lo > hi. The one
// statement of the rules: the kernels, the dense-mask oracle and FLOP counts use it.
// MNEMO_HD: CUDA kernels call this same function on the device (ternaries: no std::min there).
MNEMO_HD void attention_row_interval(const AttentionDesc& a, int64_t i, int64_t& lo, int64_t& hi) {
  const int64_t Tm = a.Tk - a.prefix;
  lo = 0;
  hi = Tm - 1;
  if (i < a.read_rows) {
    hi = (a.read_rows < Tm ? a.read_rows : Tm) - 1;
  } else if (i < a.Tq - a.write_rows) {
    const int64_t p = i + Tm - a.Tq;
    const int64_t first = a.window > 0 ? p - a.window + 1 : 0;
    const int64_t last = a.causal ? p : (a.window > 0 ? p + a.window - 1 : Tm - 1);
    lo = first > 0 ? first : 0;
    hi = last < Tm - 1 ? last : Tm - 1;
  }
}

// The keys [lo, hi] whose bias row i reads from the band (bias_band > 0): key j reads
// column j - i + bias_shift. Empty when lo > hi.
MNEMO_HD void attention_band_keys(const AttentionDesc& a, int64_t i, int64_t& lo, int64_t& hi) {
  const int64_t first = i - a.bias_shift, last = first + a.bias_band - 1;
  lo = first > a.bias_from ? first : a.bias_from;
  hi = last < a.Tk - 1 ? last : a.Tk - 1;
}

struct AdamWHyper {
  double lr, beta1, beta2, eps, weight_decay;
  double bias_correction1, bias_correction2;  // 1 - beta^t
};

struct SgdHyper {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, first_step;
};

enum class Unary : uint8_t {
  neg, exp, log, sqrt, rsqrt, tanh, sigmoid, relu, gelu_erf, gelu_tanh, silu, softplus,
  affine,  // alpha * x + beta
  pow,     // x ^ alpha
  rdiv,    // alpha / x
  square,
  abs,
};
const char* unary_name(Unary op);

enum class Binary : uint8_t { add, sub, mul, div };
enum class Reduce : uint8_t { sum, max };

// ---- signatures ------------------------------------------------------------------

template <class T> using FillSig = void(T* y, int64_t n, T value);
template <class T> using AxpySig = void(T* y, const T* x, int64_t n, T alpha);  // y += alpha x
// *out = sum of x^2 in double. out is on the kernel's device (one double), so a sum over
// many tensors waits for the device once, when the host reads them all (clip_grad_norm).
template <class T> using SumSquaresSig = void(double* out, const T* x, int64_t n);
template <class T> using CountNonFiniteSig = int64_t(const T* x, int64_t n);

template <class T> using UnaryForwardSig = void(Unary op, T* y, const T* x, int64_t n, T alpha, T beta);
// dx = dy * f'(x); y is the saved forward output (used where cheaper than x).
template <class T> using UnaryBackwardSig =
    void(Unary op, T* dx, const T* dy, const T* x, const T* y, int64_t n, T alpha, T beta);

// out = a (op) b over s.dims; strides[0] unused, [1] for a, [2] for b.
template <class T> using BinarySig = void(Binary op, T* out, const T* a, const T* b, const Strided& s);
// out = cond ? a : b; strides[0] cond, [1] a, [2] b.
template <class T> using WhereSig = void(T* out, const uint8_t* cond, const T* a, const T* b, const Strided& s);
// out[i] = in[strides[0] . i] over s.dims: permute, expand.
template <class T> using StridedCopySig = void(T* out, const T* in, const Strided& s);
// out (shape with size-1 dims where reduced) = sum of in over s.dims; strides[0] is out's
// stride per in-dim (0 on summed dims). out is overwritten.
template <class T> using SumToSig = void(T* out, const T* in, const Strided& s);

// Gated GELU over (rows, 2I) -> (rows, I): y = a * gelu(g) with (a, g) the two halves of a
// row, or y = gelu(a) * g when activate_first (the two conventions of SPEC 0.2).
template <class T> using GegluForwardSig = void(T* y, const T* x, int64_t rows, int64_t I, bool activate_first);
template <class T> using GegluBackwardSig =
    void(T* dx, const T* dy, const T* x, int64_t rows, int64_t I, bool activate_first);

// The nBRC cell's elementwise part over n elements (layers/nbrc_gate.h), from its gate
// pre-activations ga, gc, gu and the hidden state h:
//   a = 1 + tanh(ga),  c = sigmoid(gc),  v = tanh(gu + a h),  out = v + c (h - v)
template <class T> using NbrcForwardSig = void(T* out, const T* ga, const T* gc, const T* gu, const T* h, int64_t n);
template <class T> using NbrcBackwardSig = void(T* dga, T* dgc, T* dgu, T* dh, const T* dout, const T* ga,
                                                const T* gc, const T* gu, const T* h, int64_t n);

template <class T> using ReduceSig = void(Reduce op, T* y, const T* x, int64_t outer, int64_t n, int64_t inner);
// dx (overwritten) gets dy at the first position of each max, 0 elsewhere.
template <class T> using ReduceMaxBackwardSig =
    void(T* dx, const T* dy, const T* x, const T* y, int64_t outer, int64_t n, int64_t inner);

template <class T> using GemmSig = void(const GemmDesc& d, const T* a, const T* b, T* c);

template <class T> using CopyAxisSig = void(T* dst, const T* src, const AxisCopy& d);
// out[o, i, :] = x[o, idx[i], :], or 0 where idx[i] = -1
template <class T> using GatherSig =
    void(T* out, const T* x, const int32_t* idx, int64_t outer, int64_t n_src, int64_t n_idx, int64_t inner);
// dx[o, idx[i], :] += dy[o, i, :]   (dx must be initialised; idx[i] = -1 skipped)
template <class T> using ScatterAddSig =
    void(T* dx, const T* dy, const int32_t* idx, int64_t outer, int64_t n_src, int64_t n_idx, int64_t inner);

// Softmax (or log-softmax) over the last axis of (rows, n). A row that is all -inf gives
// zeros (softmax) or all -inf (log-softmax) instead of NaN.
template <class T> using SoftmaxForwardSig = void(T* y, const T* x, int64_t rows, int64_t n, bool log);
template <class T> using SoftmaxBackwardSig =
    void(T* dx, const T* dy, const T* y, int64_t rows, int64_t n, bool log);

// loss[r] = lse(logits[r]) - logits[r, target[r]], 0 where target == ignore.
template <class T> using CrossEntropyForwardSig = void(T* loss, T* lse, const T* logits, const int32_t* target,
                                                       int64_t rows, int64_t V, int32_t ignore_index);
// dlogits[r] = scale * (softmax(logits[r]) - onehot(target[r])), 0 rows where ignored.
template <class T> using CrossEntropyBackwardSig =
    void(T* dlogits, const T* dloss_rows, const T* logits, const T* lse, const int32_t* target, int64_t rows,
         int64_t V, int32_t ignore_index);

// Layer norm over the last axis of (rows, D); gain and bias may be null. Saves mean, rstd.
template <class T> using LayerNormForwardSig = void(T* y, T* mean, T* rstd, const T* x, const T* gain,
                                                    const T* bias, int64_t rows, int64_t D, T eps);
// dx overwritten; dgain, dbias (may be null) overwritten with the sum over rows.
template <class T> using LayerNormBackwardSig =
    void(T* dx, T* dgain, T* dbias, const T* dy, const T* x, const T* mean, const T* rstd, const T* gain,
         int64_t rows, int64_t D);
// RMS norm: y = x * rsqrt(mean(x^2) + eps) * gain (gain may be null). Saves rstd.
template <class T> using RmsNormForwardSig = void(T* y, T* rstd, const T* x, const T* gain, int64_t rows,
                                                  int64_t D, T eps);
template <class T> using RmsNormBackwardSig = void(T* dx, T* dgain, const T* dy, const T* x, const T* rstd,
                                                   const T* gain, int64_t rows, int64_t D);
// y = x / max(||x||, eps) over the last axis; saves the row norms.
template <class T> using L2NormForwardSig = void(T* y, T* norm, const T* x, int64_t rows, int64_t D, T eps);
template <class T> using L2NormBackwardSig =
    void(T* dx, const T* dy, const T* y, const T* norm, int64_t rows, int64_t D, T eps);

// Hyper-connection mixing over R rows of S streams H (R, S, D), C = S + 2 coefficient columns
// (column 0 feeds the branch, 1..S the residuals, S+1 is beta). Width: per row and stream
//   coef[s, c] = base[s, c] + scale[c] tanh(z[s, c]),  z[s, c] = <H[s], G[:, c]> / max(||H[s]||, eps)
// with G (D, C); out (R, D + S C) holds the branch input sum_s coef[s, 0] H[s], then coef.
// Saves z (R, S, C) and the norms (R, S).
template <class T> using HyperWidthForwardSig = void(T* out, T* z, T* norm, const T* H, const T* G, const T* base,
                                                     const T* scale, int64_t R, int64_t S, int64_t D, T eps);
// Overwrites dH, dG (D, C), dbase (S, C) and dscale (C); any may be null.
template <class T> using HyperWidthBackwardSig =
    void(T* dH, T* dG, T* dbase, T* dscale, const T* dout, const T* H, const T* G, const T* scale, const T* out,
         const T* z, const T* norm, int64_t R, int64_t S, int64_t D, T eps);
// Depth: out[j] = (mix ? sum_s coef[s, 1 + j] H[s] : H[j]) + coef[j, S + 1] b, out (R, S, D),
// coef (R, S, C), b (R, D).
template <class T> using HyperDepthForwardSig =
    void(T* out, const T* H, const T* coef, const T* b, int64_t R, int64_t S, int64_t D, bool mix);
// Overwrites dH, dcoef (column 0 zero) and db; any may be null.
template <class T> using HyperDepthBackwardSig = void(T* dH, T* dcoef, T* db, const T* dout, const T* H,
                                                      const T* coef, const T* b, int64_t R, int64_t S, int64_t D,
                                                      bool mix);

// y = x * keep / (1 - p), keep drawn from a counter-based hash of (seed, i): the same
// mask for forward and backward, whatever the thread count.
template <class T> using DropoutSig = void(T* y, const T* x, int64_t n, T p, uint64_t seed);

// Inclusive cumulative sum along the middle axis of (outer, n, inner); reverse sums from the end.
template <class T> using CumsumSig = void(T* y, const T* x, int64_t outer, int64_t n, int64_t inner, bool reverse);

// o (B, H, Tq, d), lse (B, H, Tq); bias (H, Tq, Tk) or, with bias_per_batch, (B, H, Tq, Tk)
// additive logits, or null.
template <class T> using AttentionForwardSig =
    void(const AttentionDesc& a, T* o, T* lse, const T* q, const T* k, const T* v, const T* bias);
// Overwrites dq, dk, dv and dbias (when not null) from dout and the saved o, lse.
template <class T> using AttentionBackwardSig =
    void(const AttentionDesc& a, T* dq, T* dk, T* dv, T* dbias, const T* dout, const T* q, const T* k, const T* v,
         const T* bias, const T* o, const T* lse);

template <class T> using AdamWStepSig = void(T* w, const T* g, T* m, T* v, int64_t n, const AdamWHyper& h);
template <class T> using SgdStepSig = void(T* w, const T* g, T* buf, int64_t n, const SgdHyper& h);

// ---- slots (defined in kernels.cpp; keep the same order there) ----------------------

extern Kernel<FillSig> fill;
extern Kernel<AxpySig> axpy;
extern Kernel<SumSquaresSig> sum_squares;
extern Kernel<CountNonFiniteSig> count_non_finite;
extern Kernel<UnaryForwardSig> unary_forward;
extern Kernel<UnaryBackwardSig> unary_backward;
extern Kernel<BinarySig> binary;
extern Kernel<WhereSig> where;
extern Kernel<StridedCopySig> strided_copy;
extern Kernel<SumToSig> sum_to;
extern Kernel<GegluForwardSig> geglu_forward;
extern Kernel<GegluBackwardSig> geglu_backward;
extern Kernel<NbrcForwardSig> nbrc_forward;
extern Kernel<NbrcBackwardSig> nbrc_backward;
extern Kernel<ReduceSig> reduce;
extern Kernel<ReduceMaxBackwardSig> reduce_max_backward;
extern Kernel<GemmSig> gemm;
extern Kernel<CopyAxisSig> copy_axis;
extern Kernel<GatherSig> gather;
extern Kernel<ScatterAddSig> scatter_add;
extern Kernel<SoftmaxForwardSig> softmax_forward;
extern Kernel<SoftmaxBackwardSig> softmax_backward;
extern Kernel<CrossEntropyForwardSig> cross_entropy_forward;
extern Kernel<CrossEntropyBackwardSig> cross_entropy_backward;
extern Kernel<LayerNormForwardSig> layer_norm_forward;
extern Kernel<LayerNormBackwardSig> layer_norm_backward;
extern Kernel<RmsNormForwardSig> rms_norm_forward;
extern Kernel<RmsNormBackwardSig> rms_norm_backward;
extern Kernel<L2NormForwardSig> l2_norm_forward;
extern Kernel<L2NormBackwardSig> l2_norm_backward;
extern Kernel<HyperWidthForwardSig> hyper_width_forward;
extern Kernel<HyperWidthBackwardSig> hyper_width_backward;
extern Kernel<HyperDepthForwardSig> hyper_depth_forward;
extern Kernel<HyperDepthBackwardSig> hyper_depth_backward;
extern Kernel<DropoutSig> dropout;
extern Kernel<CumsumSig> cumsum;
extern Kernel<AttentionForwardSig> attention_forward;
extern Kernel<AttentionBackwardSig> attention_backward;
extern Kernel<AdamWStepSig> adamw_step;
extern Kernel<SgdStepSig> sgd_step;

// Fills the slots of every backend that was built, once, and applies MNEMO_BACKEND; throws
// if a slot lacks its mandatory reference implementation (float and double) or the
// variable has an unknown value. Safe to call from several threads.
void init();
#if __cplusplus >= 202002L
std::span<KernelSlot* const> all_kernels();
#endif

}  // namespace mnemo::kernels
