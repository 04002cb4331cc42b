// Tensor-level helpers shared by op files (no tape): broadcasting descriptors and the
// few kernel calls that backward passes of several families need.
#pragma once

#include <initializer_list>

#include "autograd/dispatch.h"
#include "autograd/tensor.h"

namespace mnemo::tm {

// NumPy broadcast of two shapes; throws naming `op` if they do not broadcast.
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);

// A strided walk over `out` for up to three operands broadcast to it; adjacent dims that
// every operand walks contiguously are merged, so the innermost run is as long as it can be.
kernels::Strided broadcast_walk(const Shape& out, std::initializer_list<Shape> operands);

// Sums g over the dims that were broadcast to produce it, giving shape `to`.
Tensor sum_to(const Tensor& g, const Shape& to);
// Materialises x broadcast to `shape`.
Tensor expand(const Tensor& x, const Shape& shape);

Tensor binary(kernels::Binary op, const Tensor& a, const Tensor& b, const char* name = "binary");
// cond ? a : b, all three broadcast together; cond is u8.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// Checks `mask` is u8 and broadcasts to `like` (without growing it).
void check_mask(const char* op, const Tensor& mask, const Shape& like);
Tensor unary(kernels::Unary op, const Tensor& x, double alpha = 0, double beta = 0);
inline Tensor scale(const Tensor& x, double alpha) { return unary(kernels::Unary::affine, x, alpha, 0.0); }

// `axis` of `s` in [0, rank), accepting negative axes; throws "[op] axis ..." otherwise.
int axis(const char* op, const Shape& s, int axis);

// An index or mask operand (targets, indices: i32 or u8) read on the host to validate it
// and run on `device`: a host tensor is returned as is in `host` and copied to the device
// (one explicit copy, no wait); a device tensor is copied to the host for the check.
struct IndexOperand {
  Tensor host, on_device;
};
IndexOperand index_operand(const Tensor& t, Device device);

// Checks every Var in an op is a floating type and all share one dtype.
void check_float_same(const char* op, std::initializer_list<const Tensor*> xs);

}  // namespace mnemo::tm
