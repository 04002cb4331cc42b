// Which slots an emulated device has: exactly the real CUDA backend's list. A slot's
// Backend::cuda entry holds the CPU kernel chosen when emulation was switched on; launch()
// runs the slot's current CPU choice (Kernel::cpu_f32) instead, so that an emulated run
// follows the same backend switches as the CPU run it is compared with.
#include "kernels/emulated/emulation.h"

#include <vector>

#include "kernels/cuda/slots.h"
#include "kernels/kernels.h"

namespace mnemo::kernels::device {
namespace {

using AnyFn = void (*)();  // a slot's entry while it is put aside (casts between function pointers are exact)

template <template <class> class Sig>
void swap_slot(Kernel<Sig>& k, bool on, std::vector<AnyFn>& saved, size_t& i) {
  if (on) {
    saved.push_back(reinterpret_cast<AnyFn>(k.get(Backend::cuda)));
    k.set(Backend::cuda, k.cpu_f32());
  } else {
    k.set(Backend::cuda, reinterpret_cast<Sig<float>*>(saved[i++]));
  }
}

}  // namespace

void fill_emulated_slots(bool on) {
  static std::vector<AnyFn> saved;  // the real backend's entries while emulation is on
  size_t i = 0;
  if (on) saved.clear();
#define MNEMO_EMULATE(slot) swap_slot(slot, on, saved, i);
  MNEMO_CUDA_SLOTS(MNEMO_EMULATE)
#undef MNEMO_EMULATE
}

}  // namespace mnemo::kernels::device
