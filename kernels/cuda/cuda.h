// The CUDA backend's kernels, float only, on device pointers, with the slot signatures of
// kernels.h; register.cpp puts them in the slots. Every one queues work on the run's stream
// and returns without waiting, except count_non_finite, whose result the host reads.
#pragma once

#include "kernels/kernels.h"

namespace mnemo::kernels::cuda {

void fill(float* y, int64_t n, float value);
void axpy(float* y, const float* x, int64_t n, float alpha);
void sum_squares(double* out, const float* x, int64_t n);
int64_t count_non_finite(const float* x, int64_t n);
void dropout(float* y, const float* x, int64_t n, float p, uint64_t seed);
void unary_forward(Unary op, float* y, const float* x, int64_t n, float alpha, float beta);
void unary_backward(Unary op, float* dx, const float* dy, const float* x, const float* y, int64_t n, float alpha,
                    float beta);
void geglu_forward(float* y, const float* x, int64_t rows, int64_t I, bool activate_first);
void geglu_backward(float* dx, const float* dy, const float* x, int64_t rows, int64_t I, bool activate_first);
void nbrc_forward(float* out, const float* ga, const float* gc, const float* gu, const float* h, int64_t n);
void nbrc_backward(float* dga, float* dgc, float* dgu, float* dh, const float* dout, const float* ga, const float* gc,
                   const float* gu, const float* h, int64_t n);
void binary(Binary op, float* out, const float* a, const float* b, const Strided& s);
void where(float* out, const uint8_t* cond, const float* a, const float* b, const Strided& s);
void strided_copy(float* out, const float* in, const Strided& s);
void sum_to(float* out, const float* in, const Strided& s);
void reduce(Reduce op, float* y, const float* x, int64_t outer, int64_t n, int64_t inner);
void reduce_max_backward(float* dx, const float* dy, const float* x, const float* y, int64_t outer, int64_t n,
                         int64_t inner);
void cumsum(float* y, const float* x, int64_t outer, int64_t n, int64_t inner, bool reverse);
void copy_axis(float* dst, const float* src, const AxisCopy& d);
void gather(float* out, const float* x, const int32_t* idx, int64_t outer, int64_t n_src, int64_t n_idx, int64_t inner);
void scatter_add(float* dx, const float* dy, const int32_t* idx, int64_t outer, int64_t n_src, int64_t n_idx,
                 int64_t inner);
void adamw_step(float* w, const float* g, float* m, float* v, int64_t n, const AdamWHyper& h);
void sgd_step(float* w, const float* g, float* buf, int64_t n, const SgdHyper& h);

void gemm(const GemmDesc& d, const float* a, const float* b, float* c);

void softmax_forward(float* y, const float* x, int64_t rows, int64_t n, bool log);
void softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t n, bool log);
void cross_entropy_forward(float* loss, float* lse, const float* logits, const int32_t* target, int64_t rows, int64_t V,
                           int32_t ignore_index);
void cross_entropy_backward(float* dlogits, const float* dloss_rows, const float* logits, const float* lse,
                            const int32_t* target, int64_t rows, int64_t V, int32_t ignore_index);
void layer_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* gain, const float* bias,
                        int64_t rows, int64_t D, float eps);
void layer_norm_backward(float* dx, float* dgain, float* dbias, const float* dy, const float* x, const float* mean,
                         const float* rstd, const float* gain, int64_t rows, int64_t D);
void rms_norm_forward(float* y, float* rstd, const float* x, const float* gain, int64_t rows, int64_t D, float eps);
void rms_norm_backward(float* dx, float* dgain, const float* dy, const float* x, const float* rstd, const float* gain,
                       int64_t rows, int64_t D);
void l2_norm_forward(float* y, float* norm, const float* x, int64_t rows, int64_t D, float eps);
void l2_norm_backward(float* dx, const float* dy, const float* y, const float* norm, int64_t rows, int64_t D,
                      float eps);

void hyper_width_forward(float* out, float* z, float* norm, const float* H, const float* G, const float* base,
                         const float* scale, int64_t R, int64_t S, int64_t D, float eps);
void hyper_width_backward(float* dH, float* dG, float* dbase, float* dscale, const float* dout, const float* H,
                          const float* G, const float* scale, const float* out, const float* z, const float* norm,
                          int64_t R, int64_t S, int64_t D, float eps);
void hyper_depth_forward(float* out, const float* H, const float* coef, const float* b, int64_t R, int64_t S, int64_t D,
                         bool mix);
void hyper_depth_backward(float* dH, float* dcoef, float* db, const float* dout, const float* H, const float* coef,
                          const float* b, int64_t R, int64_t S, int64_t D, bool mix);

void attention_forward(const AttentionDesc& a, float* o, float* lse, const float* q, const float* k, const float* v,
                       const float* bias);
void attention_backward(const AttentionDesc& a, float* dq, float* dk, float* dv, float* dbias, const float* dout,
                        const float* q, const float* k, const float* v, const float* bias, const float* o,
                        const float* lse);

}  // namespace mnemo::kernels::cuda
