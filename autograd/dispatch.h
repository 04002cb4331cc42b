// launch(): the one place where Tensors become pointers and a backend is chosen.
// f64 always runs the reference kernel (gradient checks); f32 on the CPU runs the slot's
// cpu_f32() (oneDNN where it fills the slot, else the fast cpu kernel, else the reference;
// the reference when forced, kernels.h); CUDA tensors need a CUDA kernel: no silent copies.
// Every tensor operand must be on the device of `like`: a host constant reaching a device
// op (or the reverse) fails here naming the op, never runs on the wrong memory. On the
// emulated device (kernels/emulated/device.h) a slot the real backend fills runs the CPU's
// current choice for it, so an emulated run can be compared with the CPU run bit for bit.
#pragma once

#include <type_traits>
#include <utility>

#include "autograd/tensor.h"
#include "kernels/emulated/device.h"
#include "kernels/kernels.h"

namespace mnemo {

// The device pointer of a kernel operand (Tensor's friend): for launch() and for pointers
// that ride in a kernel's descriptor (an attention mask), checked against the op's device.
struct KernelArgs {
  template <class T>
  static T* ptr(const Tensor& t, Device device, const char* op) {
    if (!t.defined()) return nullptr;  // optional operand
    MNEMO_CHECK(t.dtype() == dtype_of<T>(), "[" << op << "] operand " << t.shape() << " is " << t.dtype()
                                                << ", the kernel takes " << dtype_name(dtype_of<T>()));
    MNEMO_CHECK(t.device() == device, "[" << op << "] operand " << t.shape() << " " << t.dtype() << " is on "
                                          << t.device() << ", the op runs on " << device
                                          << " (create constants and indices on the inputs' device)");
    return static_cast<T*>(t.storage_ptr());
  }
};

// For descriptor pointers: the operand's pointer on `like`'s device.
template <class T>
T* kernel_ptr(const Tensor& t, const Tensor& like, const char* op) {
  return KernelArgs::ptr<T>(t, like.device(), op);
}

namespace detail {

template <class T, class A>
decltype(auto) unpack(A&& a, Device device, const char* op) {
  if constexpr (std::is_same_v<std::decay_t<A>, Tensor>) {
    return KernelArgs::ptr<T>(a, device, op);
  } else {
    return std::forward<A>(a);
  }
}

template <template <class> class Sig>
Sig<float>* choose_f32(const kernels::Kernel<Sig>& k, Device device) {
  if (device == Device::cuda) {
    auto* fn = k.get(kernels::Backend::cuda);
    MNEMO_CHECK(fn, "[" << k.name << "] has no CUDA kernel");
    return kernels::device::emulated() ? k.cpu_f32() : fn;
  }
  return k.cpu_f32();
}

}  // namespace detail

template <template <class> class Sig, class... Args>
decltype(auto) launch(const kernels::Kernel<Sig>& k, const Tensor& like, Args&&... args) {
  kernels::init();
  const Device device = like.device();
  if (like.dtype() == DType::f64) {
    MNEMO_CHECK(device == Device::cpu, "[" << k.name << "] f64 runs on the CPU only (the reference kernels); "
                                           << "a cuda tensor must be f32");
    return k.f64(detail::unpack<double>(args, device, k.name)...);
  }
  MNEMO_CHECK(like.dtype() == DType::f32, "[" << k.name << "] no kernel for dtype " << like.dtype());
  auto* fn = detail::choose_f32(k, device);
  // A kernel that returns a value makes the host wait for the device: counted with the copies.
  if constexpr (!std::is_void_v<decltype(fn(detail::unpack<float>(args, device, k.name)...))>)
    if (device == Device::cuda) kernels::device::result_read();
  return fn(detail::unpack<float>(args, device, k.name)...);
}

}  // namespace mnemo
