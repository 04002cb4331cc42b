// Shape and data-movement ops. All views are (outer, n, inner) around one axis.
//   reshape:      a view; dx = dy viewed back
//   permute:      a copy; dx = dy permuted by the inverse permutation
//   broadcast_to: dx = dy summed over the broadcast dims
//   concat:       dx_k = the k-th block of dy along the axis;   slice, pad: the adjoint pair
//   index_select: y[.., i, ..] = x[.., idx[i], ..];   dx = scatter-add of dy at idx
#include <numeric>

#include "autograd/apply.h"
#include "autograd/gradcheck/gradcheck.h"
#include "autograd/ops/ops.h"
#include "autograd/ops/tensor_math.h"

namespace mnemo {
namespace {

// dst[.., dst_off:dst_off+len, ..] (+)= src[.., src_off:src_off+len, ..] along `axis`.
void copy_block(const Tensor& dst, int64_t dst_off, const Tensor& src, int64_t src_off, int axis, int64_t len,
                bool accumulate = false) {
  const Shape& s = src.shape();
  const int a = s.axis(axis);
  kernels::AxisCopy d;
  d.outer = s.outer(a);
  d.inner = s.inner(a);
  d.src_n = s[a];
  d.src_off = src_off;
  d.dst_n = dst.shape()[a];
  d.dst_off = dst_off;
  d.len = len;
  d.accumulate = accumulate;
  if (d.outer * d.len * d.inner > 0) launch(kernels::copy_axis, src, dst, src, d);
}

struct ReshapeOp {
  const char* name = "reshape";
  Shape shape;
  Tensor forward(Ctx&, const Tensor& x) const { return x.reshape(shape); }
  Grads backward(Ctx& ctx, const Tensor& dy) const { return {dy.reshape(ctx.input_shape(0))}; }
};

Tensor permute_tensor(const Tensor& x, std::span<const int> perm) {
  const Shape& s = x.shape();
  int64_t in_strides[kMaxDims];
  int64_t st = 1;
  for (int i = s.rank() - 1; i >= 0; --i) {
    in_strides[i] = st;
    st *= s[i];
  }
  kernels::Strided w;
  w.rank = s.rank();
  Shape out;
  for (int i = 0; i < s.rank(); ++i) {
    out.push_back(s[perm[size_t(i)]]);
    w.dims[i] = s[perm[size_t(i)]];
    w.strides[0][i] = in_strides[perm[size_t(i)]];
  }
  Tensor y = Tensor::empty(out, x.dtype(), x.device());
  if (y.numel() > 0) launch(kernels::strided_copy, x, y, x, w);
  return y;
}

struct PermuteOp {
  const char* name = "permute";
  std::vector<int> perm;
  Tensor forward(Ctx&, const Tensor& x) const {
    tm::check_float_same(name, {&x});
    MNEMO_CHECK(int(perm.size()) == x.rank(), "[permute] " << perm.size() << " axes for shape " << x.shape());
    std::vector<bool> seen(perm.size(), false);
    for (int p : perm) {
      MNEMO_CHECK(p >= 0 && p < x.rank() && !seen[size_t(p)],
                  "[permute] not a permutation of 0.." << x.rank() - 1 << " for shape " << x.shape());
      seen[size_t(p)] = true;
    }
    return permute_tensor(x, perm);
  }
  Grads backward(Ctx&, const Tensor& dy) const {
    std::vector<int> inv(perm.size());
    for (size_t i = 0; i < perm.size(); ++i) inv[size_t(perm[i])] = int(i);
    return {permute_tensor(dy, inv)};
  }
};

struct BroadcastOp {
  const char* name = "broadcast_to";
  Shape shape;
  Tensor forward(Ctx&, const Tensor& x) const {
    tm::check_float_same(name, {&x});
    MNEMO_CHECK(tm::broadcast_shapes(name, x.shape(), shape) == shape,
                "[broadcast_to] cannot broadcast " << x.shape() << " to " << shape);
    return tm::expand(x, shape);
  }
  Grads backward(Ctx& ctx, const Tensor& dy) const { return {tm::sum_to(dy, ctx.input_shape(0))}; }
};

struct ConcatOp {
  const char* name = "concat";
  int axis;
  Tensor forward(Ctx&, std::span<const Tensor> xs) const {
    MNEMO_CHECK(!xs.empty(), "[concat] needs at least one input");
    const Shape& s0 = xs[0].shape();
    const int a = tm::axis(name, s0, axis);
    int64_t total = 0;
    for (const Tensor& x : xs) {
      tm::check_float_same(name, {&xs[0], &x});
      bool ok = x.rank() == s0.rank();
      for (int i = 0; ok && i < s0.rank(); ++i) ok = i == a || x.dim(i) == s0[i];
      MNEMO_CHECK(ok, "[concat] along axis " << axis << ": shapes " << s0 << " and " << x.shape() << " differ off the axis");
      total += x.dim(a);
    }
    Tensor y = Tensor::empty(s0.with(a, total), xs[0].dtype(), xs[0].device());
    int64_t off = 0;
    for (const Tensor& x : xs) {
      copy_block(y, off, x, 0, a, x.dim(a));
      off += x.dim(a);
    }
    return y;
  }
  Grads backward(Ctx& ctx, const Tensor& dy) const {
    const int a = dy.shape().axis(axis);
    Grads g(ctx.num_inputs());
    int64_t off = 0;
    for (size_t k = 0; k < g.size(); ++k) {
      const Shape& s = ctx.input_shape(k);
      if (ctx.needs_grad(k)) {
        g[k] = Tensor::empty(s, dy.dtype(), dy.device());
        copy_block(g[k], 0, dy, off, a, s[a]);
      }
      off += s[a];
    }
    return g;
  }
};

struct SliceOp {
  const char* name = "slice";
  int axis;
  int64_t start, length;
  Tensor forward(Ctx&, const Tensor& x) const {
    tm::check_float_same(name, {&x});
    const int a = tm::axis(name, x.shape(), axis);
    MNEMO_CHECK(start >= 0 && length >= 0 && start + length <= x.dim(a),
                "[slice] [" << start << ", " << start + length << ") out of range for axis " << axis << " of " << x.shape());
    Tensor y = Tensor::empty(x.shape().with(a, length), x.dtype(), x.device());
    copy_block(y, 0, x, start, a, length);
    return y;
  }
  Grads backward(Ctx& ctx, const Tensor& dy) const {
    Tensor dx = Tensor::zeros(ctx.input_shape(0), dy.dtype(), dy.device());
    copy_block(dx, start, dy, 0, axis, length);
    return {dx};
  }
};

struct PadOp {
  const char* name = "pad";
  int axis;
  int64_t before, after;
  double value;
  Tensor forward(Ctx&, const Tensor& x) const {
    tm::check_float_same(name, {&x});
    const int a = tm::axis(name, x.shape(), axis);
    MNEMO_CHECK(before >= 0 && after >= 0, "[pad] negative padding " << before << ", " << after);
    Tensor y = Tensor::full(x.shape().with(a, x.dim(a) + before + after), value, x.dtype(), x.device());
    copy_block(y, before, x, 0, a, x.dim(a));
    return y;
  }
  Grads backward(Ctx& ctx, const Tensor& dy) const {
    const Shape& s = ctx.input_shape(0);
    Tensor dx = Tensor::empty(s, dy.dtype(), dy.device());
    copy_block(dx, 0, dy, before, axis, s[s.axis(axis)]);
    return {dx};
  }
};

struct IndexSelectOp {
  const char* name = "index_select";
  int axis;
  Tensor index;
  bool holes = false;  // -1 selects zeros
  Tensor forward(Ctx& ctx, const Tensor& x) const {
    tm::check_float_same(name, {&x});
    MNEMO_CHECK(index.dtype() == DType::i32 && index.rank() == 1,
                "[index_select] index must be i32 of rank 1, got " << index.dtype() << " " << index.shape());
    const Shape& s = x.shape();
    const int a = tm::axis(name, s, axis);
    const tm::IndexOperand index_of = tm::index_operand(index, x.device());
    const int32_t* idx = index_of.host.data<int32_t>();
    for (int64_t i = 0; i < index.numel(); ++i)
      MNEMO_CHECK((idx[i] >= 0 || (holes && idx[i] == -1)) && idx[i] < s[a],
                  "[" << name << "] index " << idx[i] << " at position " << i << " out of range [0, " << s[a]
                      << ") for axis " << axis << " of " << s);
    Tensor y = Tensor::empty(s.with(a, index.numel()), x.dtype(), x.device());
    if (y.numel() > 0)
      launch(kernels::gather, x, y, x, kernel_ptr<int32_t>(index_of.on_device, x, name), s.outer(a), s[a],
             index.numel(), s.inner(a));
    ctx.save("index", index_of.on_device);
    return y;
  }
  Grads backward(Ctx& ctx, const Tensor& dy) const {
    const Shape& s = ctx.input_shape(0);
    const int a = s.axis(axis);
    Tensor dx = Tensor::zeros(s, dy.dtype(), dy.device());
    if (dy.numel() > 0)
      launch(kernels::scatter_add, dy, dx, dy, kernel_ptr<int32_t>(ctx.saved("index"), dy, name), s.outer(a), s[a],
             index.numel(), s.inner(a));
    return {dx};
  }
};

}  // namespace

Var reshape(Var x, const Shape& shape) {
  MNEMO_CHECK(shape.numel() == x.value().numel(), "[reshape] cannot view " << x.shape() << " as " << shape);
  return apply(ReshapeOp{"reshape", shape}, x);
}

Var permute(Var x, std::span<const int> perm) {
  return apply(PermuteOp{"permute", std::vector<int>(perm.begin(), perm.end())}, x);
}

Var transpose(Var x, int axis0, int axis1) {
  std::vector<int> perm(size_t(x.rank()));
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[size_t(tm::axis("transpose", x.shape(), axis0))], perm[size_t(tm::axis("transpose", x.shape(), axis1))]);
  return permute(x, perm);
}

Var broadcast_to(Var x, const Shape& shape) { return apply(BroadcastOp{"broadcast_to", shape}, x); }
Var concat(std::span<const Var> xs, int axis) { return apply_n(ConcatOp{"concat", axis}, xs); }
Var slice(Var x, int axis, int64_t start, int64_t length) {
  // The whole axis is x itself: no copy, no node (attention slices its keys this way every call).
  if (x.rank() > 0 && start == 0 && length == x.dim(tm::axis("slice", x.shape(), axis)) && is_floating(x.dtype()))
    return x;
  return apply(SliceOp{"slice", axis, start, length}, x);
}
Var pad(Var x, int axis, int64_t before, int64_t after, double value) {
  return apply(PadOp{"pad", axis, before, after, value}, x);
}
Var index_select(Var x, int axis, const Tensor& index) { return apply(IndexSelectOp{"index_select", axis, index}, x); }
Var index_select_or_zero(Var x, int axis, const Tensor& index) {
  return apply(IndexSelectOp{"index_select_or_zero", axis, index, true}, x);
}

std::vector<Var> split(Var x, int axis, std::span<const int64_t> sizes) {
  const int64_t n = x.shape()[tm::axis("split", x.shape(), axis)];
  MNEMO_CHECK(std::accumulate(sizes.begin(), sizes.end(), int64_t(0)) == n,
              "[split] sizes add up to " << std::accumulate(sizes.begin(), sizes.end(), int64_t(0)) << ", axis "
                                         << axis << " of " << x.shape() << " has " << n);
  std::vector<Var> parts;
  int64_t off = 0;
  for (int64_t len : sizes) {
    parts.push_back(slice(x, axis, off, len));
    off += len;
  }
  return parts;
}

Var embedding(Var table, const Tensor& tokens) {
  MNEMO_CHECK(table.rank() == 2, "[embedding] table must be (V, D), got " << table.shape());
  MNEMO_CHECK(tokens.dtype() == DType::i32, "[embedding] tokens must be i32, got " << tokens.dtype());
  Shape out = tokens.shape();
  out.push_back(table.dim(1));
  return reshape(index_select(table, 0, tokens.reshape(Shape{tokens.numel()})), out);
}

using gradcheck::Sample;
MNEMO_GRADCHECK("reshape", [](Sample& s) { return reshape(s.input({2, 6}), {3, 2, 2}); });
MNEMO_GRADCHECK("permute", [](Sample& s) { return permute(s.input({2, 3, 4}), {2, 0, 1}); });
MNEMO_GRADCHECK("transpose", [](Sample& s) { return transpose(s.input({2, 3, 4, 2}), 1, 2); });
MNEMO_GRADCHECK("broadcast_to", [](Sample& s) { return broadcast_to(s.input({3, 1}), {2, 3, 4}); });
MNEMO_GRADCHECK("concat.axis1", [](Sample& s) {
  return concat({s.input({2, 1, 3}), s.input({2, 3, 3}), s.input({2, 2, 3})}, 1);
});
MNEMO_GRADCHECK("concat.last", [](Sample& s) { return concat({s.input({2, 2}), s.input({2, 3})}, -1); });
MNEMO_GRADCHECK("slice", [](Sample& s) { return slice(s.input({2, 6, 3}), 1, 2, 3); });
MNEMO_GRADCHECK("split", [](Sample& s) {
  const int64_t sizes[] = {1, 3, 2};
  auto parts = split(s.input({2, 6}), 1, sizes);
  return parts[0] * parts[2] + sum(parts[1], 1, true);  // every part reaches the output
});
MNEMO_GRADCHECK("pad", [](Sample& s) { return pad(s.input({2, 3, 2}), 1, 2, 1, 0.5); });
MNEMO_GRADCHECK("index_select.repeats", [](Sample& s) {
  return index_select(s.input({3, 5, 2}), 1, Tensor::from_ints({6}, {4, 0, 4, 2, 2, 4}));
});
MNEMO_GRADCHECK("index_select_or_zero.holes", [](Sample& s) {  // inner 2 (row copies) and 1 (elements)
  const Tensor idx = Tensor::from_ints({6}, {4, -1, 4, 2, -1, 0});
  Var rows = index_select_or_zero(s.input({3, 5, 2}), 1, idx), elements = index_select_or_zero(s.input({3, 5}), 1, idx);
  return concat({reshape(rows, {36}), reshape(elements, {18})}, 0);
});
MNEMO_GRADCHECK("embedding", [](Sample& s) { return embedding(s.input({7, 4}), s.indices({2, 5}, 7)); });

}  // namespace mnemo
