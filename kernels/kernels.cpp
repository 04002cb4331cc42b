// Slot definitions, the coverage table behind all_kernels(), and init().
#include "kernels/kernels.h"
#include "kernels/precision.h"
#include "kernels/emulated/device.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>

#include "mnemo_config.h"
#if MNEMO_WITH_ONEDNN
#include "kernels/onednn/onednn.h"
#endif
#if MNEMO_WITH_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace mnemo::kernels {

void register_reference_kernels();
void register_cpu_kernels();
#if MNEMO_WITH_ONEDNN
void register_onednn_kernels();
#endif
#if MNEMO_WITH_CUDA
void register_cuda_kernels();
#endif

Kernel<FillSig> fill{"fill"};
Kernel<AxpySig> axpy{"axpy"};
Kernel<SumSquaresSig> sum_squares{"sum_squares"};
Kernel<CountNonFiniteSig> count_non_finite{"count_non_finite"};
Kernel<UnaryForwardSig> unary_forward{"unary_forward"};
Kernel<UnaryBackwardSig> unary_backward{"unary_backward"};
Kernel<BinarySig> binary{"binary"};
Kernel<WhereSig> where{"where"};
Kernel<StridedCopySig> strided_copy{"strided_copy"};
Kernel<SumToSig> sum_to{"sum_to"};
Kernel<GegluForwardSig> geglu_forward{"geglu_forward"};
Kernel<GegluBackwardSig> geglu_backward{"geglu_backward"};
Kernel<NbrcForwardSig> nbrc_forward{"nbrc_forward"};
Kernel<NbrcBackwardSig> nbrc_backward{"nbrc_backward"};
Kernel<ReduceSig> reduce{"reduce"};
Kernel<ReduceMaxBackwardSig> reduce_max_backward{"reduce_max_backward"};
Kernel<GemmSig> gemm{"gemm"};
Kernel<CopyAxisSig> copy_axis{"copy_axis"};
Kernel<GatherSig> gather{"gather"};
Kernel<ScatterAddSig> scatter_add{"scatter_add"};
Kernel<SoftmaxForwardSig> softmax_forward{"softmax_forward"};
Kernel<SoftmaxBackwardSig> softmax_backward{"softmax_backward"};
Kernel<CrossEntropyForwardSig> cross_entropy_forward{"cross_entropy_forward"};
Kernel<CrossEntropyBackwardSig> cross_entropy_backward{"cross_entropy_backward"};
Kernel<LayerNormForwardSig> layer_norm_forward{"layer_norm_forward"};
Kernel<LayerNormBackwardSig> layer_norm_backward{"layer_norm_backward"};
Kernel<RmsNormForwardSig> rms_norm_forward{"rms_norm_forward"};
Kernel<RmsNormBackwardSig> rms_norm_backward{"rms_norm_backward"};
Kernel<L2NormForwardSig> l2_norm_forward{"l2_norm_forward"};
Kernel<L2NormBackwardSig> l2_norm_backward{"l2_norm_backward"};
Kernel<HyperWidthForwardSig> hyper_width_forward{"hyper_width_forward"};
Kernel<HyperWidthBackwardSig> hyper_width_backward{"hyper_width_backward"};
Kernel<HyperDepthForwardSig> hyper_depth_forward{"hyper_depth_forward"};
Kernel<HyperDepthBackwardSig> hyper_depth_backward{"hyper_depth_backward"};
Kernel<DropoutSig> dropout{"dropout"};
Kernel<CumsumSig> cumsum{"cumsum"};
Kernel<AttentionForwardSig> attention_forward{"attention_forward"};
Kernel<AttentionBackwardSig> attention_backward{"attention_backward"};
Kernel<AdamWStepSig> adamw_step{"adamw_step"};
Kernel<SgdStepSig> sgd_step{"sgd_step"};

namespace {

KernelSlot* const kAll[] = {
    &fill, &axpy, &sum_squares, &count_non_finite, &unary_forward, &unary_backward, &binary, &where,
    &strided_copy, &sum_to, &geglu_forward, &geglu_backward, &nbrc_forward, &nbrc_backward, &reduce,
    &reduce_max_backward, &gemm, &copy_axis, &gather, &scatter_add,
    &softmax_forward, &softmax_backward, &cross_entropy_forward, &cross_entropy_backward,
    &layer_norm_forward, &layer_norm_backward, &rms_norm_forward, &rms_norm_backward, &l2_norm_forward,
    &l2_norm_backward, &hyper_width_forward, &hyper_width_backward, &hyper_depth_forward, &hyper_depth_backward,
    &dropout, &cumsum, &attention_forward, &attention_backward, &adamw_step, &sgd_step,
};

std::atomic<bool> g_prefer_onednn{MNEMO_WITH_ONEDNN != 0};
std::atomic<bool> g_force_reference{false};

void apply_backend_variable() {
  const char* value = std::getenv("MNEMO_BACKEND");
  const std::string v = value ? value : "";
  if (v == "reference") g_force_reference = true;
  else if (v == "cpu") g_prefer_onednn = false;
  else if (!v.empty() && v != "auto")
    throw std::invalid_argument("[kernels] MNEMO_BACKEND='" + v + "': expected reference, cpu or auto (or unset)");
}


}  // namespace

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::reference: return "reference";
    case Backend::cpu: return "cpu";
    case Backend::onednn: return "onednn";
    case Backend::cuda: return "cuda";
  }
  return "?";
}

const char* unary_name(Unary op) {
  static const char* const kNames[] = {"neg",      "exp",       "log",  "sqrt",     "rsqrt", "tanh",
                                       "sigmoid",  "relu",      "gelu", "gelu_tanh", "silu", "softplus",
                                       "affine",   "pow",       "rdiv", "square",   "abs"};
  return kNames[int(op)];
}

void init() {
  static std::once_flag once;
  std::call_once(once, [] {
    apply_backend_variable();
    register_reference_kernels();
    register_cpu_kernels();
#if MNEMO_WITH_ONEDNN
    register_onednn_kernels();
#endif
#if MNEMO_WITH_CUDA
    register_cuda_kernels();
#endif
    for (const KernelSlot* k : kAll) {
      if (!k->filled[int(Backend::reference)] || !k->has_f64)
        throw std::logic_error(std::string("[kernels] slot '") + k->name + "' lacks its reference kernel");
    }
    device::apply_emulation_variable();  // after registration: it fills slots
  });
}

std::span<KernelSlot* const> all_kernels() { return kAll; }

// The setters run init() first, so that MNEMO_BACKEND cannot undo them later.
void set_prefer_onednn(bool on) {
  init();
  g_prefer_onednn = on && MNEMO_WITH_ONEDNN;
}
bool prefer_onednn() { return g_prefer_onednn; }
void set_force_reference(bool on) {
  init();
  g_force_reference = on;
}
bool force_reference() { return g_force_reference; }
bool onednn_built() { return MNEMO_WITH_ONEDNN != 0; }

namespace {

std::atomic<MatmulPrecision> g_precision{MatmulPrecision::f32};

std::string cpu_bf16_unavailable() {
  init();
  if (force_reference()) return "every float kernel runs on the plain reference loops (MNEMO_BACKEND=reference)";
  if (!MNEMO_WITH_ONEDNN) return "this build has no oneDNN (meson option dnnl), whose GEMMs are the only bf16 ones";
  if (!prefer_onednn()) return "oneDNN is switched off (MNEMO_BACKEND=cpu), and its GEMMs are the only bf16 ones";
#if MNEMO_WITH_ONEDNN
  return onednn::bf16_unavailable();
#else
  return "";
#endif
}

// The GEMMs of GemmDevice::cuda are the CPU's on the emulated device.
bool real_cuda(GemmDevice where) { return where == GemmDevice::cuda && !device::emulated(); }

}  // namespace

std::string bf16_unavailable(GemmDevice where) {
  if (!real_cuda(where)) return cpu_bf16_unavailable();
  const std::string why = device::unavailable();  // the CUDA runtime's reason when there is no device
  return why.empty() ? "" : "no CUDA device: " + why;
}

void set_matmul_precision(MatmulPrecision p, GemmDevice where) {
  if (p == MatmulPrecision::bf16) {
    const std::string why = bf16_unavailable(where);
    if (!why.empty()) throw std::runtime_error("[matmul] bf16 cannot run here: " + why);
  }
  if (real_cuda(where)) {
#if MNEMO_WITH_CUDA
    cuda::set_matmul_precision(p == MatmulPrecision::bf16 ? cuda::MatmulPrecision::bf16 : cuda::MatmulPrecision::f32);
#endif
  } else {
#if MNEMO_WITH_ONEDNN
    onednn::set_bf16_matmul(p == MatmulPrecision::bf16);
#endif
  }
  g_precision = p;
}

uint64_t bf16_weight_conversions() {
#if MNEMO_WITH_ONEDNN
  return onednn::bf16_weight_conversions();
#else
  return 0;
#endif
}

MatmulPrecision matmul_precision() { return g_precision; }

}  // namespace mnemo::kernels
