#include "autograd/ops/tensor_math.h"

#include <vector>

namespace mnemo::tm {

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  const int r = std::max(a.rank(), b.rank());
  std::vector<int64_t> dims(static_cast<size_t>(r));
  for (int i = 0; i < r; ++i) {
    const int ia = a.rank() - r + i, ib = b.rank() - r + i;
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    MNEMO_CHECK(da == db || da == 1 || db == 1,
                "[" << op << "] shapes " << a << " and " << b << " do not broadcast (dim " << i << ": " << da
                    << " vs " << db << ")");
    dims[size_t(i)] = da == 1 ? db : da;
  }
  return Shape(std::span<const int64_t>(dims));
}

kernels::Strided broadcast_walk(const Shape& out, std::initializer_list<Shape> operands) {
  const int r = out.rank();
  const int n_ops = int(operands.size());
  MNEMO_ASSERT(n_ops <= 3);
  int64_t full[3][kMaxDims] = {};
  int k = 0;
  for (const Shape& s : operands) {
    MNEMO_ASSERT(s.rank() <= r);
    int64_t stride = 1;
    for (int i = r - 1; i >= 0; --i) {
      const int is = s.rank() - r + i;
      const int64_t ext = is >= 0 ? s[is] : 1;
      MNEMO_ASSERT(ext == out[i] || ext == 1);
      full[k][i] = (ext == out[i] && ext != 1) ? stride : 0;
      stride *= ext;
    }
    ++k;
  }
  kernels::Strided w;
  for (int i = 0; i < r; ++i) {
    if (out[i] == 1) continue;  // contributes nothing to the walk
    const int last = w.rank - 1;
    bool merge = last >= 0;
    for (int j = 0; j < n_ops && merge; ++j) merge = w.strides[j][last] == full[j][i] * out[i];
    if (merge) {
      w.dims[last] *= out[i];
      for (int j = 0; j < n_ops; ++j) w.strides[j][last] = full[j][i];
    } else {
      w.dims[w.rank] = out[i];
      for (int j = 0; j < n_ops; ++j) w.strides[j][w.rank] = full[j][i];
      ++w.rank;
    }
  }
  return w;
}

Tensor sum_to(const Tensor& g, const Shape& to) {
  if (g.shape() == to) return g;
  Tensor out = Tensor::empty(to, g.dtype(), g.device());
  if (out.numel() == 0) return out;
  if (g.numel() == 0) {
    out.fill_(0.0);
    return out;
  }
  launch(kernels::sum_to, g, out, g, broadcast_walk(g.shape(), {to, g.shape()}));
  return out;
}

Tensor expand(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  if (out.numel() > 0) launch(kernels::strided_copy, x, out, x, broadcast_walk(shape, {x.shape()}));
  return out;
}

Tensor binary(kernels::Binary op, const Tensor& a, const Tensor& b, const char* name) {
  const Shape s = broadcast_shapes(name, a.shape(), b.shape());
  Tensor out = Tensor::empty(s, a.dtype(), a.device());
  if (out.numel() > 0) launch(kernels::binary, a, op, out, a, b, broadcast_walk(s, {s, a.shape(), b.shape()}));
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  const Shape s = broadcast_shapes("where", cond.shape(), broadcast_shapes("where", a.shape(), b.shape()));
  Tensor out = Tensor::empty(s, a.dtype(), a.device());
  if (out.numel() > 0)
    launch(kernels::where, a, out, kernel_ptr<uint8_t>(cond, a, "where"), a, b, broadcast_walk(s, {cond.shape(), a.shape(), b.shape()}));
  return out;
}

void check_mask(const char* op, const Tensor& mask, const Shape& like) {
  MNEMO_CHECK(mask.dtype() == DType::u8, "[" << op << "] mask must be u8 (1 = keep), got " << mask.dtype());
  MNEMO_CHECK(mask.rank() <= like.rank() && broadcast_shapes(op, mask.shape(), like) == like,
              "[" << op << "] mask " << mask.shape() << " does not broadcast to " << like);
}

Tensor unary(kernels::Unary op, const Tensor& x, double alpha, double beta) {
  Tensor y = x.empty_like();
  launch(kernels::unary_forward, x, op, y, x, x.numel(), alpha, beta);
  return y;
}

int axis(const char* op, const Shape& s, int axis) {
  const int a = axis < 0 ? axis + s.rank() : axis;
  MNEMO_CHECK(a >= 0 && a < s.rank(), "[" << op << "] axis " << axis << " out of range for " << s);
  return a;
}

IndexOperand index_operand(const Tensor& t, Device device) {
  if (!t.defined()) return {};
  return {t.to(Device::cpu), t.to(device)};
}

void check_float_same(const char* op, std::initializer_list<const Tensor*> xs) {
  const Tensor* first = *xs.begin();
  for (const Tensor* t : xs) {
    MNEMO_CHECK(t->dtype() == DType::f32 || t->dtype() == DType::f64,
                "[" << op << "] expected f32 or f64 inputs, got " << t->dtype() << " " << t->shape());
    MNEMO_CHECK(t->dtype() == first->dtype(),
                "[" << op << "] inputs mix dtypes " << first->dtype() << " and " << t->dtype());
    MNEMO_CHECK(t->device() == first->device(),
                "[" << op << "] inputs on different devices: " << first->device() << " and " << t->device());
  }
}

}  // namespace mnemo::tm
