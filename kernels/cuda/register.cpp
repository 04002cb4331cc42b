// The CUDA backend's coverage table: the slots it fills (float, device pointers), from the
// one list in slots.h.
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/slots.h"

namespace mnemo::kernels {

#define MNEMO_CUDA(slot) slot.set(Backend::cuda, &cuda::slot);

void register_cuda_kernels() { MNEMO_CUDA_SLOTS(MNEMO_CUDA) }

#undef MNEMO_CUDA

}  // namespace mnemo::kernels
