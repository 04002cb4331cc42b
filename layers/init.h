// Init: deterministic parameter initialisation from a seeded generator, in PyTorch's
// default schemes (SPEC.md, section 0). Layers take an Init& and draw from it in a fixed
// order, so one seed gives the same model every time. dtype f64 builds layers for
// gradient checks.
#pragma once

#include <cmath>

#include "autograd/param.h"
#include "autograd/random.h"

namespace mnemo::nn {

class Init {
 public:
  explicit Init(uint64_t seed, DType dtype = DType::f32) : rng_(seed), dtype_(dtype) {}

  DType dtype() const { return dtype_; }
  Rng& rng() { return rng_; }

  Param zeros(const Shape& s) { return Param(Tensor::zeros(s, dtype_)); }
  Param ones(const Shape& s) { return Param(Tensor::full(s, 1.0, dtype_)); }
  Param constant(const Shape& s, double v) { return Param(Tensor::full(s, v, dtype_)); }
  Param normal(const Shape& s, double stddev = 1.0) { return Param(Tensor::randn(s, rng_, dtype_, stddev)); }
  Param uniform(const Shape& s, double bound) { return Param(Tensor::uniform(s, rng_, -bound, bound, dtype_)); }
  // nn.Linear / nn.Conv1d default: kaiming_uniform(a = sqrt 5) = U(+-1/sqrt(fan_in)), and the
  // same bound for the bias.
  Param fan_in_uniform(const Shape& s, int64_t fan_in) { return uniform(s, 1.0 / std::sqrt(double(fan_in))); }

 private:
  Rng rng_;
  DType dtype_;
};

}  // namespace mnemo::nn
