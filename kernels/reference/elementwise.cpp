// Reference elementwise kernels: fill/axpy, unary maps and their derivatives, broadcasting
// binary ops, where, strided copies (permute, expand) and their adjoint sum_to.
#include <cmath>
#include <vector>

#include "kernels/reference/common.h"
#include "kernels/reference/reference.h"
#include "kernels/reference/vec.h"

namespace mnemo::kernels::ref {
namespace {

// Elementwise maps with the pointers as plain restrict parameters, so loops stay contiguous
// SIMD loops (a lambda capturing the pointers made GCC fall back to gathers and scatters).
template <class F>
void map_n(int64_t n, F&& f) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) f(i);
}

template <class T, class F>
void map1(T* __restrict y, const T* __restrict x, int64_t n, F f) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

// dx = dy * g(v), v the saved input or output (each derivative needs only one of them)
template <class T, class F>
void map_grad(T* __restrict dx, const T* __restrict dy, const T* __restrict v, int64_t n, F g) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * g(v[i]);
}

template <class T> T sigmoid_of(T x) { return T(1) / (T(1) + fast_exp(-x)); }
template <class T> constexpr T kSqrt2OverPi = T(0.79788456080286535588);

}  // namespace

template <class T>
void fill(T* y, int64_t n, T value) {
  map_n(n, [&](int64_t i) { y[i] = value; });
}

template <class T>
void axpy(T* y, const T* x, int64_t n, T alpha) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

template <class T>
double sum_squares(const T* x, int64_t n) {
  double s = 0;
#pragma omp parallel for simd reduction(+ : s) schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) s += double(x[i]) * double(x[i]);
  return s;
}

template <class T>
int64_t count_non_finite(const T* x, int64_t n) {
  int64_t c = 0;
#pragma omp parallel for reduction(+ : c) schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) c += std::isfinite(x[i]) ? 0 : 1;
  return c;
}

template <class T>
void unary_forward(Unary op, T* y, const T* x, int64_t n, T alpha, T beta) {
  switch (op) {
    case Unary::neg: return map1(y, x, n, [](T v) { return -v; });
    case Unary::exp: return map1(y, x, n, [](T v) { return fast_exp(v); });
    case Unary::log: return map1(y, x, n, [](T v) { return std::log(v); });
    case Unary::sqrt: return map1(y, x, n, [](T v) { return std::sqrt(v); });
    case Unary::rsqrt: return map1(y, x, n, [](T v) { return T(1) / std::sqrt(v); });
    case Unary::tanh: return map1(y, x, n, [](T v) { return fast_tanh(v); });
    case Unary::sigmoid: return map1(y, x, n, [](T v) { return sigmoid_of(v); });
    case Unary::relu: return map1(y, x, n, [](T v) { return v > T(0) ? v : T(0); });
    case Unary::gelu_erf: return map1(y, x, n, [](T v) { return gelu_of(v); });
    case Unary::gelu_tanh:
      return map1(y, x, n, [](T v) { return T(0.5) * v * (T(1) + fast_tanh(kSqrt2OverPi<T> * (v + T(0.044715) * v * v * v))); });
    case Unary::silu: return map1(y, x, n, [](T v) { return v * sigmoid_of(v); });
    case Unary::softplus:
      return map1(y, x, n, [](T v) { return (v > T(0) ? v : T(0)) + std::log1p(fast_exp(-std::abs(v))); });
    case Unary::affine: return map1(y, x, n, [alpha, beta](T v) { return alpha * v + beta; });
    case Unary::pow: return map1(y, x, n, [alpha](T v) { return std::pow(v, alpha); });
    case Unary::rdiv: return map1(y, x, n, [alpha](T v) { return alpha / v; });
    case Unary::square: return map1(y, x, n, [](T v) { return v * v; });
    case Unary::abs: return map1(y, x, n, [](T v) { return std::abs(v); });
  }
}

template <class T>
void unary_backward(Unary op, T* dx, const T* dy, const T* x, const T* y, int64_t n, T alpha, T /*beta*/) {
  switch (op) {  // derivatives in terms of the input x, or of the output y where cheaper
    case Unary::neg: return map_grad(dx, dy, dy, n, [](T) { return T(-1); });
    case Unary::exp: return map_grad(dx, dy, y, n, [](T out) { return out; });
    case Unary::log: return map_grad(dx, dy, x, n, [](T in) { return T(1) / in; });
    case Unary::sqrt: return map_grad(dx, dy, y, n, [](T out) { return T(0.5) / out; });
    case Unary::rsqrt: return map_grad(dx, dy, y, n, [](T out) { return T(-0.5) * out * out * out; });
    case Unary::tanh: return map_grad(dx, dy, y, n, [](T out) { return T(1) - out * out; });
    case Unary::sigmoid: return map_grad(dx, dy, y, n, [](T out) { return out * (T(1) - out); });
    case Unary::relu: return map_grad(dx, dy, x, n, [](T in) { return in > T(0) ? T(1) : T(0); });
    case Unary::gelu_erf: return map_grad(dx, dy, x, n, [](T in) { return gelu_grad(in); });
    case Unary::gelu_tanh:
      return map_grad(dx, dy, x, n, [](T v) {
        const T t = fast_tanh(kSqrt2OverPi<T> * (v + T(0.044715) * v * v * v));
        const T du = kSqrt2OverPi<T> * (T(1) + T(3) * T(0.044715) * v * v);
        return T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) * du;
      });
    case Unary::silu:
      return map_grad(dx, dy, x, n, [](T v) {
        const T s = sigmoid_of(v);
        return s * (T(1) + v * (T(1) - s));
      });
    case Unary::softplus: return map_grad(dx, dy, x, n, [](T v) { return sigmoid_of(v); });
    case Unary::affine: return map_grad(dx, dy, dy, n, [alpha](T) { return alpha; });
    case Unary::pow: return map_grad(dx, dy, x, n, [alpha](T v) { return alpha * std::pow(v, alpha - T(1)); });
    case Unary::rdiv: return map_grad(dx, dy, x, n, [alpha](T v) { return -alpha / (v * v); });
    case Unary::square: return map_grad(dx, dy, x, n, [](T v) { return T(2) * v; });
    case Unary::abs: return map_grad(dx, dy, x, n, [](T v) { return v > T(0) ? T(1) : (v < T(0) ? T(-1) : T(0)); });
  }
}

template <class T>
void binary(Binary op, T* out, const T* a, const T* b, const Strided& s) {
  const int64_t sa = inner_stride(s, 1), sb = inner_stride(s, 2);
  for_each_run(s, [&](int64_t o, const int64_t* off, int64_t n) {
    T* y = out + o;
    const T* pa = a + off[1];
    const T* pb = b + off[2];
    switch (op) {
      case Binary::add: for (int64_t i = 0; i < n; ++i) y[i] = pa[i * sa] + pb[i * sb]; break;
      case Binary::sub: for (int64_t i = 0; i < n; ++i) y[i] = pa[i * sa] - pb[i * sb]; break;
      case Binary::mul: for (int64_t i = 0; i < n; ++i) y[i] = pa[i * sa] * pb[i * sb]; break;
      case Binary::div: for (int64_t i = 0; i < n; ++i) y[i] = pa[i * sa] / pb[i * sb]; break;
    }
  });
}

template <class T>
void where(T* out, const uint8_t* cond, const T* a, const T* b, const Strided& s) {
  const int64_t sc = inner_stride(s, 0), sa = inner_stride(s, 1), sb = inner_stride(s, 2);
  for_each_run(s, [&](int64_t o, const int64_t* off, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
      out[o + i] = cond[off[0] + i * sc] ? a[off[1] + i * sa] : b[off[2] + i * sb];
  });
}

template <class T>
void strided_copy(T* out, const T* in, const Strided& s) {
  const int64_t si = inner_stride(s, 0);
  for_each_run(s, [&](int64_t o, const int64_t* off, int64_t n) {
    const T* p = in + off[0];
    for (int64_t i = 0; i < n; ++i) out[o + i] = p[i * si];
  });
}

// Each output element sums its own slice of `in`, so threads never write the same place.
// The walk puts kept dims outside and summed dims inside; the common "sum over rows of a
// (R, C) matrix" case instead gives each thread a band of columns and streams the rows.
template <class T>
void sum_to(T* out, const T* in, const Strided& s) {
  const int r = s.rank;
  if (r == 2 && s.strides[0][0] == 0 && s.strides[0][1] == 1) {
    const int64_t R = s.dims[0], C = s.dims[1];
    const int64_t bands = (C + 255) / 256;
#pragma omp parallel for schedule(static) if (R * C > kParallelMin && bands > 1)
    for (int64_t band = 0; band < bands; ++band) {
      const int64_t c0 = band * 256, c1 = std::min(C, c0 + 256);
      std::vector<double> acc(size_t(c1 - c0), 0.0);
      for (int64_t i = 0; i < R; ++i) {
        const T* row = in + i * s.strides[1][0];
        for (int64_t c = c0; c < c1; ++c) acc[size_t(c - c0)] += row[c * s.strides[1][1]];
      }
      for (int64_t c = c0; c < c1; ++c) out[c] = T(acc[size_t(c - c0)]);
    }
    return;
  }
  int kept[kMaxDims], summed[kMaxDims], nk = 0, ns = 0;
  int64_t n_out = 1, n_sum = 1;
  for (int d = 0; d < r; ++d) {
    if (s.strides[0][d] != 0 || s.dims[d] == 1) {
      kept[nk++] = d;
      n_out *= s.dims[d];
    } else {
      summed[ns++] = d;
      n_sum *= s.dims[d];
    }
  }
#pragma omp parallel for schedule(static) if (n_out * n_sum > kParallelMin && n_out > 1)
  for (int64_t o = 0; o < n_out; ++o) {
    int64_t rem = o, in_off = 0, out_off = 0;
    for (int k = nk - 1; k >= 0; --k) {
      const int d = kept[k];
      const int64_t i = rem % s.dims[d];
      rem /= s.dims[d];
      in_off += i * s.strides[1][d];
      out_off += i * s.strides[0][d];
    }
    double acc = 0;
    for (int64_t j = 0; j < n_sum; ++j) {
      int64_t rj = j, off = in_off;
      for (int k = ns - 1; k >= 0; --k) {
        const int d = summed[k];
        off += (rj % s.dims[d]) * s.strides[1][d];
        rj /= s.dims[d];
      }
      acc += double(in[off]);
    }
    out[out_off] = T(acc);
  }
}

// One pass over each row: read both halves, write the product (and both gradients).
template <class T>
void geglu_forward(T* y, const T* x, int64_t rows, int64_t I, bool activate_first) {
#pragma omp parallel for schedule(static) if (rows * I > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* a = x + r * 2 * I;
    const T* g = a + I;
    T* yr = y + r * I;
    if (activate_first) {
#pragma omp simd
      for (int64_t j = 0; j < I; ++j) yr[j] = gelu_of(a[j]) * g[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < I; ++j) yr[j] = a[j] * gelu_of(g[j]);
    }
  }
}

// y = a gelu(g):  da = dy gelu(g),  dg = dy a gelu'(g)   (mirrored when activate_first)
template <class T>
void geglu_backward(T* dx, const T* dy, const T* x, int64_t rows, int64_t I, bool activate_first) {
#pragma omp parallel for schedule(static) if (rows * I > kParallelMin && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = x + r * 2 * I;  // plain half
    const T* q = p + I;          // activated half
    T* dp = dx + r * 2 * I;
    T* dq = dp + I;
    const T* d = dy + r * I;
    if (activate_first) std::swap(p, q), std::swap(dp, dq);
#pragma omp simd
    for (int64_t j = 0; j < I; ++j) {
      dp[j] = d[j] * gelu_of(q[j]);
      dq[j] = d[j] * p[j] * gelu_grad(q[j]);
    }
  }
}

#define MNEMO_INSTANTIATE(T)                                                                        \
  template void fill<T>(T*, int64_t, T);                                                            \
  template void axpy<T>(T*, const T*, int64_t, T);                                                  \
  template double sum_squares<T>(const T*, int64_t);                                                \
  template int64_t count_non_finite<T>(const T*, int64_t);                                          \
  template void unary_forward<T>(Unary, T*, const T*, int64_t, T, T);                               \
  template void unary_backward<T>(Unary, T*, const T*, const T*, const T*, int64_t, T, T);          \
  template void binary<T>(Binary, T*, const T*, const T*, const Strided&);                          \
  template void where<T>(T*, const uint8_t*, const T*, const T*, const Strided&);                   \
  template void strided_copy<T>(T*, const T*, const Strided&);                                      \
  template void sum_to<T>(T*, const T*, const Strided&);                                           \
  template void geglu_forward<T>(T*, const T*, int64_t, int64_t, bool);                             \
  template void geglu_backward<T>(T*, const T*, const T*, int64_t, int64_t, bool);
MNEMO_INSTANTIATE(float)
MNEMO_INSTANTIATE(double)
#undef MNEMO_INSTANTIATE

}  // namespace mnemo::kernels::ref
