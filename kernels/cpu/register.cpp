// The fast CPU backend's coverage table (float only: double always runs the reference).
#include "kernels/cpu/cpu.h"

namespace mnemo::kernels {

#define MNEMO_CPU(slot) slot.set(Backend::cpu, &cpu::slot<float>)

void register_cpu_kernels() {
  MNEMO_CPU(fill);
  MNEMO_CPU(axpy);
  MNEMO_CPU(sum_squares);
  MNEMO_CPU(count_non_finite);
  MNEMO_CPU(unary_forward);
  MNEMO_CPU(unary_backward);
  MNEMO_CPU(binary);
  MNEMO_CPU(where);
  MNEMO_CPU(strided_copy);
  MNEMO_CPU(sum_to);
  MNEMO_CPU(geglu_forward);
  MNEMO_CPU(geglu_backward);
  MNEMO_CPU(nbrc_forward);
  MNEMO_CPU(nbrc_backward);
  MNEMO_CPU(reduce);
  MNEMO_CPU(reduce_max_backward);
  MNEMO_CPU(cumsum);
  MNEMO_CPU(gemm);
  MNEMO_CPU(copy_axis);
  MNEMO_CPU(gather);
  MNEMO_CPU(scatter_add);
  MNEMO_CPU(softmax_forward);
  MNEMO_CPU(softmax_backward);
  MNEMO_CPU(cross_entropy_forward);
  MNEMO_CPU(cross_entropy_backward);
  MNEMO_CPU(layer_norm_forward);
  MNEMO_CPU(layer_norm_backward);
  MNEMO_CPU(rms_norm_forward);
  MNEMO_CPU(rms_norm_backward);
  MNEMO_CPU(l2_norm_forward);
  MNEMO_CPU(l2_norm_backward);
  MNEMO_CPU(hyper_width_forward);
  MNEMO_CPU(hyper_width_backward);
  MNEMO_CPU(hyper_depth_forward);
  MNEMO_CPU(hyper_depth_backward);
  MNEMO_CPU(dropout);
  MNEMO_CPU(attention_forward);
  MNEMO_CPU(attention_backward);
  MNEMO_CPU(adamw_step);
  MNEMO_CPU(sgd_step);
}

#undef MNEMO_CPU

}  // namespace mnemo::kernels
