// The oneDNN backend's coverage table, and its engine and streams.
#include "kernels/onednn/common.h"
#include "kernels/onednn/onednn.h"

namespace mnemo::kernels {

void register_onednn_kernels() { gemm.set(Backend::onednn, &onednn::gemm); }

namespace onednn {

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

}  // namespace onednn
}  // namespace mnemo::kernels
