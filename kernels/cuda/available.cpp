#include "kernels/cuda/available.h"

#include "mnemo_config.h"
#if MNEMO_WITH_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace mnemo::kernels::cuda {

std::string cuda_unavailable() {
#if MNEMO_WITH_CUDA
  if (!device_available()) return "no CUDA device (" + device_description() + ")";
  return "";
#else
  return "this build has no CUDA backend (meson setup -Dcuda=enabled; docs/CUDA.md)";
#endif
}

}  // namespace mnemo::kernels::cuda
