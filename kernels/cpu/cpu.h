// The fast CPU backend (float): loops written for the vectoriser, fused kernels (tiled
// attention with an online softmax, hyper-connection mixing, GEGLU), OpenMP, Eigen maps for
// GEMM. Declared here, explicitly instantiated for float in each family's .cpp, registered
// in register.cpp, and tested against the reference backend (kernels/reference/).
#pragma once

#include "kernels/kernels.h"

namespace mnemo::kernels::cpu {

// elementwise.cpp
template <class T> void fill(T* y, int64_t n, T value);
template <class T> void axpy(T* y, const T* x, int64_t n, T alpha);
template <class T> double sum_squares(const T* x, int64_t n);
template <class T> int64_t count_non_finite(const T* x, int64_t n);
template <class T> void unary_forward(Unary op, T* y, const T* x, int64_t n, T alpha, T beta);
template <class T> void unary_backward(Unary op, T* dx, const T* dy, const T* x, const T* y, int64_t n, T alpha, T beta);
template <class T> void binary(Binary op, T* out, const T* a, const T* b, const Strided& s);
template <class T> void where(T* out, const uint8_t* cond, const T* a, const T* b, const Strided& s);
template <class T> void strided_copy(T* out, const T* in, const Strided& s);
template <class T> void sum_to(T* out, const T* in, const Strided& s);
template <class T> void geglu_forward(T* y, const T* x, int64_t rows, int64_t I, bool activate_first);
template <class T> void geglu_backward(T* dx, const T* dy, const T* x, int64_t rows, int64_t I, bool activate_first);
// reduce.cpp
template <class T> void reduce(Reduce op, T* y, const T* x, int64_t outer, int64_t n, int64_t inner);
template <class T> void reduce_max_backward(T* dx, const T* dy, const T* x, const T* y, int64_t outer, int64_t n, int64_t inner);
template <class T> void cumsum(T* y, const T* x, int64_t outer, int64_t n, int64_t inner, bool reverse);
// matmul.cpp
template <class T> void gemm(const GemmDesc& d, const T* a, const T* b, T* c);
// Many tiny products (two of M, N, K at most kSmallGemm): one direct loop nest per matrix,
// vectorised along whichever operand is contiguous. gemm() takes this path itself; the
// oneDNN backend hands such batches here (its per-matrix dispatch costs more than the math).
inline constexpr int64_t kSmallGemm = 16;
bool small_batched(const GemmDesc& d);
// shape.cpp
template <class T> void copy_axis(T* dst, const T* src, const AxisCopy& d);
template <class T> void gather(T* out, const T* x, const int32_t* idx, int64_t outer, int64_t n_src, int64_t n_idx, int64_t inner);
template <class T> void scatter_add(T* dx, const T* dy, const int32_t* idx, int64_t outer, int64_t n_src, int64_t n_idx, int64_t inner);
// softmax.cpp
template <class T> void softmax_forward(T* y, const T* x, int64_t rows, int64_t n, bool log);
template <class T> void softmax_backward(T* dx, const T* dy, const T* y, int64_t rows, int64_t n, bool log);
template <class T> void cross_entropy_forward(T* loss, T* lse, const T* logits, const int32_t* target, int64_t rows, int64_t V, int32_t ignore_index);
template <class T> void cross_entropy_backward(T* dlogits, const T* dloss_rows, const T* logits, const T* lse, const int32_t* target, int64_t rows, int64_t V, int32_t ignore_index);
// norm.cpp
template <class T> void layer_norm_forward(T* y, T* mean, T* rstd, const T* x, const T* gain, const T* bias, int64_t rows, int64_t D, T eps);
template <class T> void layer_norm_backward(T* dx, T* dgain, T* dbias, const T* dy, const T* x, const T* mean, const T* rstd, const T* gain, int64_t rows, int64_t D);
template <class T> void rms_norm_forward(T* y, T* rstd, const T* x, const T* gain, int64_t rows, int64_t D, T eps);
template <class T> void rms_norm_backward(T* dx, T* dgain, const T* dy, const T* x, const T* rstd, const T* gain, int64_t rows, int64_t D);
template <class T> void l2_norm_forward(T* y, T* norm, const T* x, int64_t rows, int64_t D, T eps);
template <class T> void l2_norm_backward(T* dx, const T* dy, const T* y, const T* norm, int64_t rows, int64_t D, T eps);
// hyper.cpp
template <class T> void hyper_width_forward(T* out, T* z, T* norm, const T* H, const T* G, const T* base, const T* scale, int64_t R, int64_t S, int64_t D, T eps);
template <class T> void hyper_width_backward(T* dH, T* dG, T* dbase, T* dscale, const T* dout, const T* H, const T* G, const T* scale, const T* out, const T* z, const T* norm, int64_t R, int64_t S, int64_t D, T eps);
template <class T> void hyper_depth_forward(T* out, const T* H, const T* coef, const T* b, int64_t R, int64_t S, int64_t D, bool mix);
template <class T> void hyper_depth_backward(T* dH, T* dcoef, T* db, const T* dout, const T* H, const T* coef, const T* b, int64_t R, int64_t S, int64_t D, bool mix);
// random.cpp
template <class T> void dropout(T* y, const T* x, int64_t n, T p, uint64_t seed);
// attention.cpp
template <class T> void attention_forward(const AttentionDesc& a, T* o, T* lse, const T* q, const T* k, const T* v, const T* bias);
template <class T> void attention_backward(const AttentionDesc& a, T* dq, T* dk, T* dv, T* dbias, const T* dout, const T* q,
                                           const T* k, const T* v, const T* bias, const T* o, const T* lse);
// optim.cpp
template <class T> void adamw_step(T* w, const T* g, T* m, T* v, int64_t n, const AdamWHyper& h);
template <class T> void sgd_step(T* w, const T* g, T* buf, int64_t n, const SgdHyper& h);

}  // namespace mnemo::kernels::cpu
