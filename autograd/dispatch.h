// launch(): the one place where Tensors become pointers and a backend is chosen.
// f64 always runs the reference kernel (gradient checks); f32 on the CPU runs the slot's
// cpu_f32() (oneDNN where it fills the slot, else the fast cpu kernel, else the reference;
// the reference when forced, kernels.h); CUDA tensors need a CUDA kernel: no silent copies.
#pragma once

#include <type_traits>
#include <utility>

#include "autograd/tensor.h"
#include "kernels/kernels.h"

namespace mnemo {
namespace detail {

template <class T, class A>
decltype(auto) unpack(A&& a) {
  if constexpr (std::is_same_v<std::decay_t<A>, Tensor>) {
    return a.defined() ? a.template data<T>() : static_cast<T*>(nullptr);  // undefined: optional operand
  } else {
    return std::forward<A>(a);
  }
}

template <template <class> class Sig>
Sig<float>* choose_f32(const kernels::Kernel<Sig>& k, Device device) {
  if (device == Device::cuda) {
    auto* fn = k.get(kernels::Backend::cuda);
    MNEMO_CHECK(fn, "[" << k.name << "] has no CUDA kernel");
    return fn;
  }
  return k.cpu_f32();
}

}  // namespace detail

template <template <class> class Sig, class... Args>
decltype(auto) launch(const kernels::Kernel<Sig>& k, const Tensor& like, Args&&... args) {
  kernels::init();
  if (like.dtype() == DType::f64) return k.f64(detail::unpack<double>(args)...);
  MNEMO_CHECK(like.dtype() == DType::f32, "[" << k.name << "] no kernel for dtype " << like.dtype());
  return detail::choose_f32(k, like.device())(detail::unpack<float>(args)...);
}

}  // namespace mnemo
