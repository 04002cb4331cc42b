// The kernel side of the emulated CUDA device (device.h): the Backend::cuda slots that the
// real backend fills (kernels/cuda/slots.h), and only those, get the CPU kernels.
#pragma once

namespace mnemo::kernels::device {

// on: fills the listed Backend::cuda slots (keeping what a CUDA build put there);
// off: puts back what was there. Called by set_cuda_emulation.
void fill_emulated_slots(bool on);

}  // namespace mnemo::kernels::device
