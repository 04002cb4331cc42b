// Gradient checks of layers: make a layer once per check, in f64, with every one of its
// parameters checked like an input.
#pragma once

#include <memory>

#include "autograd/gradcheck/gradcheck.h"
#include "layers/init.h"
#include "layers/module.h"

namespace mnemo::nn {

// L built as L(init, args...) with a fixed seed, kept across the finite-difference runs.
template <class L, class... Args>
L& checked_layer(gradcheck::Sample& s, Args&&... args) {
  return s.once<L>(
      [&] {
        Init init(1234, DType::f64);
        return std::make_shared<L>(init, args...);
      },
      [](L& layer) { return params(layer); });
}

}  // namespace mnemo::nn
