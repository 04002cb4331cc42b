// Param: a trainable tensor owned by a module, with its gradient. grad accumulates over
// backward calls (gradient accumulation across segments is deliberate) until zero_grad().
#pragma once

#include "autograd/tensor.h"

namespace mnemo {

struct Param {
  Tensor value;  // the weights
  // Same shape and dtype; undefined until a backward reaches it. mutable: a backward adds
  // into it through the const modules that own the Param.
  mutable Tensor grad;

  Param() = default;
  explicit Param(Tensor v) : value(std::move(v)) {}
  Param(Param&&) = default;
  Param& operator=(Param&&) = default;
  Param(const Param&) = delete;  // a copy would silently share weights
  Param& operator=(const Param&) = delete;

  void zero_grad() const {
    if (grad.defined()) grad.fill_(0.0);
  }
};

// How a module's parameter enters a tape: trained, or frozen (a constant: a loss that must
// not train these weights, e.g. a reconstruction loss that trains only a compressor).
enum class ParamUse : uint8_t { train, frozen };

}  // namespace mnemo
