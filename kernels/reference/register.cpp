// The reference backend's coverage table: every slot, in float and double (init() checks).
#include "kernels/reference/reference.h"

namespace mnemo::kernels {

#define MNEMO_REF(slot)                         \
  slot.set(Backend::reference, &ref::slot<float>); \
  slot.set_f64(&ref::slot<double>)

void register_reference_kernels() {
  MNEMO_REF(fill);
  MNEMO_REF(axpy);
  MNEMO_REF(sum_squares);
  MNEMO_REF(count_non_finite);
  MNEMO_REF(unary_forward);
  MNEMO_REF(unary_backward);
  MNEMO_REF(binary);
  MNEMO_REF(where);
  MNEMO_REF(strided_copy);
  MNEMO_REF(sum_to);
  MNEMO_REF(geglu_forward);
  MNEMO_REF(geglu_backward);
  MNEMO_REF(nbrc_forward);
  MNEMO_REF(nbrc_backward);
  MNEMO_REF(reduce);
  MNEMO_REF(reduce_max_backward);
  MNEMO_REF(cumsum);
  MNEMO_REF(gemm);
  MNEMO_REF(copy_axis);
  MNEMO_REF(gather);
  MNEMO_REF(scatter_add);
  MNEMO_REF(softmax_forward);
  MNEMO_REF(softmax_backward);
  MNEMO_REF(cross_entropy_forward);
  MNEMO_REF(cross_entropy_backward);
  MNEMO_REF(layer_norm_forward);
  MNEMO_REF(layer_norm_backward);
  MNEMO_REF(rms_norm_forward);
  MNEMO_REF(rms_norm_backward);
  MNEMO_REF(l2_norm_forward);
  MNEMO_REF(l2_norm_backward);
  MNEMO_REF(hyper_width_forward);
  MNEMO_REF(hyper_width_backward);
  MNEMO_REF(hyper_depth_forward);
  MNEMO_REF(hyper_depth_backward);
  MNEMO_REF(dropout);
  MNEMO_REF(attention_forward);
  MNEMO_REF(attention_backward);
  MNEMO_REF(adamw_step);
  MNEMO_REF(sgd_step);
}

#undef MNEMO_REF

}  // namespace mnemo::kernels
