// The CUDA backend's coverage table: the slots it fills (float, device pointers).
#include "kernels/cuda/cuda.h"

namespace mnemo::kernels {

#define MNEMO_CUDA(slot) slot.set(Backend::cuda, &cuda::slot)

void register_cuda_kernels() {
  MNEMO_CUDA(fill);
  MNEMO_CUDA(axpy);
  MNEMO_CUDA(sum_squares);
  MNEMO_CUDA(count_non_finite);
  MNEMO_CUDA(unary_forward);
  MNEMO_CUDA(unary_backward);
  MNEMO_CUDA(binary);
  MNEMO_CUDA(where);
  MNEMO_CUDA(strided_copy);
  MNEMO_CUDA(sum_to);
  MNEMO_CUDA(geglu_forward);
  MNEMO_CUDA(geglu_backward);
  MNEMO_CUDA(reduce);
  MNEMO_CUDA(reduce_max_backward);
  MNEMO_CUDA(cumsum);
  MNEMO_CUDA(gemm);
  MNEMO_CUDA(copy_axis);
  MNEMO_CUDA(gather);
  MNEMO_CUDA(scatter_add);
  MNEMO_CUDA(softmax_forward);
  MNEMO_CUDA(softmax_backward);
  MNEMO_CUDA(cross_entropy_forward);
  MNEMO_CUDA(cross_entropy_backward);
  MNEMO_CUDA(layer_norm_forward);
  MNEMO_CUDA(layer_norm_backward);
  MNEMO_CUDA(rms_norm_forward);
  MNEMO_CUDA(rms_norm_backward);
  MNEMO_CUDA(l2_norm_forward);
  MNEMO_CUDA(l2_norm_backward);
  MNEMO_CUDA(dropout);
  MNEMO_CUDA(attention_forward);
  MNEMO_CUDA(attention_backward);
  MNEMO_CUDA(adamw_step);
  MNEMO_CUDA(sgd_step);
  MNEMO_CUDA(hyper_width_forward);
  MNEMO_CUDA(hyper_width_backward);
  MNEMO_CUDA(hyper_depth_forward);
  MNEMO_CUDA(hyper_depth_backward);
}

#undef MNEMO_CUDA

}  // namespace mnemo::kernels
