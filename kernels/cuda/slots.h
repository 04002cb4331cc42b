// The kernel slots the CUDA backend fills: one list, used by register.cpp (which fills each
// with its cuda:: kernel, so a listed slot without a kernel does not compile) and by the
// emulated device (kernels/emulated/), which fills these and only these with CPU kernels so
// that a model needing a missing slot fails in emulation as it would on a GPU. Plain C++:
// built in every build. All 40 slots are listed.
#pragma once

#define MNEMO_CUDA_SLOTS(X)                                                                        \
  X(fill) X(axpy) X(sum_squares) X(count_non_finite) X(unary_forward) X(unary_backward) X(binary)  \
  X(where) X(strided_copy) X(sum_to) X(geglu_forward) X(geglu_backward) X(nbrc_forward)            \
  X(nbrc_backward) X(reduce) X(reduce_max_backward) X(cumsum) X(gemm) X(copy_axis) X(gather)       \
  X(scatter_add) X(softmax_forward) X(softmax_backward) X(cross_entropy_forward)                   \
  X(cross_entropy_backward) X(layer_norm_forward) X(layer_norm_backward) X(rms_norm_forward)       \
  X(rms_norm_backward) X(l2_norm_forward) X(l2_norm_backward) X(dropout) X(attention_forward)      \
  X(attention_backward) X(adamw_step) X(sgd_step) X(hyper_width_forward) X(hyper_width_backward)   \
  X(hyper_depth_forward) X(hyper_depth_backward)
