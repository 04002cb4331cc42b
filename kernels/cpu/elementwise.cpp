// Fast elementwise kernels: fill/axpy, unary maps and their derivatives, broadcasting
// binary ops, where, strided copies (permute, expand) and their adjoint sum_to.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/vec.h"

namespace mnemo::kernels::cpu {
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
void sum_squares(double* out, const T* x, int64_t n) {
  double s = 0;
#pragma omp parallel for simd reduction(+ : s) schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) s += double(x[i]) * double(x[i]);
  *out = s;
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

namespace {
// One run of a binary op. The common inner strides (contiguous, or one side broadcast) are
// compile-time constants so the loops vectorise; -1 means the strides are only known at run time.
template <int SA, int SB, class T>
void binary_run(Binary op, T* __restrict y, const T* __restrict a, const T* __restrict b, int64_t n, int64_t sa,
                int64_t sb) {
  if constexpr (SA >= 0) sa = SA;
  if constexpr (SB >= 0) sb = SB;
  switch (op) {
    case Binary::add:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) y[i] = a[i * sa] + b[i * sb];
      break;
    case Binary::sub:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) y[i] = a[i * sa] - b[i * sb];
      break;
    case Binary::mul:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) y[i] = a[i * sa] * b[i * sb];
      break;
    case Binary::div:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) y[i] = a[i * sa] / b[i * sb];
      break;
  }
}
}  // namespace

template <class T>
void binary(Binary op, T* out, const T* a, const T* b, const Strided& s) {
  const int64_t sa = inner_stride(s, 1), sb = inner_stride(s, 2);
  for_each_run(s, [&](int64_t o, const int64_t* off, int64_t n) {
    T* y = out + o;
    const T* pa = a + off[1];
    const T* pb = b + off[2];
    if (sa == 1 && sb == 1) return binary_run<1, 1>(op, y, pa, pb, n, sa, sb);
    if (sa == 1 && sb == 0) return binary_run<1, 0>(op, y, pa, pb, n, sa, sb);
    if (sa == 0 && sb == 1) return binary_run<0, 1>(op, y, pa, pb, n, sa, sb);
    binary_run<-1, -1>(op, y, pa, pb, n, sa, sb);
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
    if (si == 1) std::copy(p, p + n, out + o);
    else if (si == 0) std::fill(out + o, out + o + n, p[0]);
    else
      for (int64_t i = 0; i < n; ++i) out[o + i] = p[i * si];
  });
}

namespace {

// The dims of a walk split into those the output keeps and those it sums, last dim apart.
struct SumSplit {
  int kept[kMaxDims], summed[kMaxDims], nk = 0, ns = 0;
  int64_t n_kept = 1, n_sum = 1;
  SumSplit(const Strided& s, int upto) {
    for (int d = 0; d < upto; ++d) {
      if (s.strides[0][d] != 0 || s.dims[d] == 1) {
        kept[nk++] = d;
        n_kept *= s.dims[d];
      } else {
        summed[ns++] = d;
        n_sum *= s.dims[d];
      }
    }
  }
};

// Input and output offsets of the idx-th combination of the dims in `set` (row-major).
void offsets_of(const Strided& s, const int* set, int n, int64_t idx, int64_t& in_off, int64_t& out_off) {
  for (int k = n - 1; k >= 0; --k) {
    const int d = set[k];
    const int64_t i = idx % s.dims[d];
    idx /= s.dims[d];
    in_off += i * s.strides[1][d];
    out_off += i * s.strides[0][d];
  }
}

// Walks the summed dims in row-major order, keeping the input offset without divisions.
struct Odometer {
  const Strided& s;
  const int* set;
  int n;
  int64_t idx[kMaxDims] = {};
  int64_t off = 0;
  Odometer(const Strided& walk, const int* dims, int count, int64_t start) : s(walk), set(dims), n(count) {
    for (int k = n - 1; k >= 0; --k) {
      const int d = set[k];
      idx[k] = start % s.dims[d];
      start /= s.dims[d];
      off += idx[k] * s.strides[1][d];
    }
  }
  void next() {
    for (int k = n - 1; k >= 0; --k) {
      const int d = set[k];
      off += s.strides[1][d];
      if (++idx[k] < s.dims[d]) return;
      off -= s.dims[d] * s.strides[1][d];
      idx[k] = 0;
    }
  }
};

// Work items below this count get the summed range split into parts (fixed by the sizes, not
// the thread count, so results do not depend on the number of threads).
constexpr int64_t kMinItems = 8;

int64_t split_parts(int64_t items, int64_t sum_units, int64_t total) {
  if (total <= kParallelMin || items >= kMinItems) return 1;
  return std::max<int64_t>(1, std::min(sum_units, (kMinItems + items - 1) / items));
}

}  // namespace

// out = in summed over the dims where out's stride is 0. Two shapes of work: when the last dim
// is kept, each item is one band of an output row and streams the summed rows into a double
// accumulator; when it is summed, each item reduces contiguous runs into one output. Too few
// items (a bias, a scalar) get the summed range split into parts that are added at the end.
template <class T>
void sum_to(T* out, const T* in, const Strided& s) {
  const int r = s.rank;
  if (r == 0) {
    out[0] = in[0];
    return;
  }
  const int L = r - 1;
  const int64_t nL = s.dims[L], oL = s.strides[0][L], iL = s.strides[1][L];
  const SumSplit sp(s, L);
  int64_t total = nL;
  for (int d = 0; d < L; ++d) total *= s.dims[d];
  if (total == 0) return;

  if (oL != 0 || nL == 1) {
    constexpr int64_t kBand = 256;
    const int64_t bands = (nL + kBand - 1) / kBand, items = sp.n_kept * bands;
    const int64_t parts = split_parts(items, sp.n_sum, total);
    std::vector<double> partial(parts > 1 ? size_t(parts * sp.n_kept * nL) : 0);
#pragma omp parallel for schedule(static) if (total > kParallelMin && items * parts > 1)
    for (int64_t it = 0; it < items * parts; ++it) {
      const int64_t p = it % parts, band = (it / parts) % bands, q = it / parts / bands;
      const int64_t c0 = band * kBand, w = std::min(kBand, nL - c0);
      int64_t in_base = 0, out_base = 0;
      offsets_of(s, sp.kept, sp.nk, q, in_base, out_base);
      double acc[kBand];
      for (int64_t c = 0; c < w; ++c) acc[c] = 0;
      const int64_t j0 = sp.n_sum * p / parts, j1 = sp.n_sum * (p + 1) / parts;
      Odometer od(s, sp.summed, sp.ns, j0);
      for (int64_t j = j0; j < j1; ++j, od.next()) {
        const T* row = in + in_base + od.off + c0 * iL;
        if (iL == 1) {
#pragma omp simd
          for (int64_t c = 0; c < w; ++c) acc[c] += double(row[c]);
        } else {
          for (int64_t c = 0; c < w; ++c) acc[c] += double(row[c * iL]);
        }
      }
      if (parts == 1) {
        for (int64_t c = 0; c < w; ++c) out[out_base + (c0 + c) * oL] = T(acc[c]);
      } else {
        double* dst = partial.data() + (p * sp.n_kept + q) * nL + c0;
        for (int64_t c = 0; c < w; ++c) dst[c] = acc[c];
      }
    }
    if (parts > 1)
      for (int64_t q = 0; q < sp.n_kept; ++q) {
        int64_t in_base = 0, out_base = 0;
        offsets_of(s, sp.kept, sp.nk, q, in_base, out_base);
        for (int64_t c = 0; c < nL; ++c) {
          double v = 0;
          for (int64_t p = 0; p < parts; ++p) v += partial[size_t((p * sp.n_kept + q) * nL + c)];
          out[out_base + c * oL] = T(v);
        }
      }
    return;
  }

  // The last dim is summed: runs of it (cut into chunks so one long run can be split) reduce
  // into a single output element.
  const int64_t chunks = (nL + kChunk - 1) / kChunk, runs = sp.n_sum * chunks;
  const int64_t parts = split_parts(sp.n_kept, runs, total);
  std::vector<double> partial(parts > 1 ? size_t(parts * sp.n_kept) : 0);
#pragma omp parallel for schedule(static) if (total > kParallelMin && sp.n_kept * parts > 1)
  for (int64_t it = 0; it < sp.n_kept * parts; ++it) {
    const int64_t p = it % parts, q = it / parts;
    int64_t in_base = 0, out_base = 0;
    offsets_of(s, sp.kept, sp.nk, q, in_base, out_base);
    const int64_t j0 = runs * p / parts, j1 = runs * (p + 1) / parts;
    int64_t outer = j0 / chunks;
    Odometer od(s, sp.summed, sp.ns, outer);
    double acc = 0;
    for (int64_t j = j0; j < j1; ++j) {
      for (; outer < j / chunks; ++outer) od.next();
      const int64_t c0 = (j % chunks) * kChunk, w = std::min(kChunk, nL - c0);
      const T* run = in + in_base + od.off + c0 * iL;
      if (iL == 1) {
#pragma omp simd reduction(+ : acc)
        for (int64_t c = 0; c < w; ++c) acc += double(run[c]);
      } else {
        for (int64_t c = 0; c < w; ++c) acc += double(run[c * iL]);
      }
    }
    if (parts == 1) out[out_base] = T(acc);
    else partial[size_t(p * sp.n_kept + q)] = acc;
  }
  if (parts > 1)
    for (int64_t q = 0; q < sp.n_kept; ++q) {
      int64_t in_base = 0, out_base = 0;
      offsets_of(s, sp.kept, sp.nk, q, in_base, out_base);
      double v = 0;
      for (int64_t p = 0; p < parts; ++p) v += partial[size_t(p * sp.n_kept + q)];
      out[out_base] = T(v);
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

// nBRC (kernels.h): one pass instead of nine elementwise ops of the composite cell.
template <class T>
void nbrc_forward(T* out, const T* ga, const T* gc, const T* gu, const T* h, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T a = T(1) + fast_tanh(ga[i]), c = sigmoid_of(gc[i]), v = fast_tanh(gu[i] + a * h[i]);
    out[i] = v + c * (h[i] - v);
  }
}

template <class T>
void nbrc_backward(T* dga, T* dgc, T* dgu, T* dh, const T* dout, const T* ga, const T* gc, const T* gu, const T* h,
                   int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T t = fast_tanh(ga[i]), a = T(1) + t, c = sigmoid_of(gc[i]), v = fast_tanh(gu[i] + a * h[i]);
    const T dv = dout[i] * (T(1) - c) * (T(1) - v * v);
    dgu[i] = dv;
    dga[i] = dv * h[i] * (T(1) - t * t);
    dgc[i] = dout[i] * (h[i] - v) * c * (T(1) - c);
    dh[i] = dout[i] * c + dv * a;
  }
}

#define MNEMO_INSTANTIATE(T)                                                                        \
  template void nbrc_forward<T>(T*, const T*, const T*, const T*, const T*, int64_t);               \
  template void nbrc_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, const T*, int64_t);\
  template void fill<T>(T*, int64_t, T);                                                            \
  template void axpy<T>(T*, const T*, int64_t, T);                                                  \
  template void sum_squares<T>(double*, const T*, int64_t);                                                \
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
#undef MNEMO_INSTANTIATE

}  // namespace mnemo::kernels::cpu
