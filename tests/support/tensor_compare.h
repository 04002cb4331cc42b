// Element-wise comparisons of tensors for tests (any dtype, read as doubles).
#pragma once

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>

#include "autograd/tensor.h"

namespace mnemo::test {

// max |a - b| over all elements; the shapes must match.
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  BOOST_REQUIRE_MESSAGE(a.shape() == b.shape(), "shapes " << a.shape() << " vs " << b.shape());
  const auto x = a.to_vector(), y = b.to_vector();
  double w = 0;
  for (size_t i = 0; i < x.size(); ++i) w = std::max(w, std::abs(x[i] - y[i]));
  return w;
}

// max |a| over all elements (0 for an empty tensor).
inline double max_abs(const Tensor& a) {
  double w = 0;
  for (double v : a.to_vector()) w = std::max(w, std::abs(v));
  return w;
}

}  // namespace mnemo::test
