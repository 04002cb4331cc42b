// Reference unary maps, their derivatives, and gated GELU, with the std:: functions
// (the fast backend has its own float exp, erf and tanh; these are what they approximate).
#include <algorithm>
#include <cmath>
#include <numbers>

#include "kernels/reference/loops.h"
#include "kernels/reference/reference.h"

namespace mnemo::kernels::ref {
namespace {

template <class T> T sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }

// GELU, exact (erf) form, and its derivative Phi(x) + x phi(x).
template <class T> T gelu(T x) { return T(0.5) * x * (T(1) + std::erf(x / std::sqrt(T(2)))); }
template <class T> T gelu_derivative(T x) {
  const T cdf = T(0.5) * (T(1) + std::erf(x / std::sqrt(T(2))));
  const T pdf = std::exp(T(-0.5) * x * x) / std::sqrt(T(2) * std::numbers::pi_v<T>);
  return cdf + x * pdf;
}

// GELU, tanh approximation: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
template <class T> T gelu_tanh_u(T x) { return std::sqrt(T(2) / std::numbers::pi_v<T>) * (x + T(0.044715) * x * x * x); }
template <class T> T gelu_tanh(T x) { return T(0.5) * x * (T(1) + std::tanh(gelu_tanh_u(x))); }
template <class T> T gelu_tanh_derivative(T x) {
  const T t = std::tanh(gelu_tanh_u(x));
  const T du = std::sqrt(T(2) / std::numbers::pi_v<T>) * (T(1) + T(3) * T(0.044715) * x * x);
  return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * du;
}

template <class T>
T apply(Unary op, T x, T alpha, T beta) {
  switch (op) {
    case Unary::neg: return -x;
    case Unary::exp: return std::exp(x);
    case Unary::log: return std::log(x);
    case Unary::sqrt: return std::sqrt(x);
    case Unary::rsqrt: return T(1) / std::sqrt(x);
    case Unary::tanh: return std::tanh(x);
    case Unary::sigmoid: return sigmoid(x);
    case Unary::relu: return x > T(0) ? x : T(0);
    case Unary::gelu_erf: return gelu(x);
    case Unary::gelu_tanh: return gelu_tanh(x);
    case Unary::silu: return x * sigmoid(x);
    case Unary::softplus: return std::max(x, T(0)) + std::log1p(std::exp(-std::abs(x)));  // no overflow
    case Unary::affine: return alpha * x + beta;
    case Unary::pow: return std::pow(x, alpha);
    case Unary::rdiv: return alpha / x;
    case Unary::square: return x * x;
    case Unary::abs: return std::abs(x);
  }
  return T(0);
}

// f'(x). The ops save only one of x and y = f(x) (autograd/ops/activations.cpp): these
// five are written in terms of y, the rest in terms of x.
bool reads_y(Unary op) {
  return op == Unary::exp || op == Unary::sqrt || op == Unary::rsqrt || op == Unary::tanh || op == Unary::sigmoid;
}

template <class T>
T derivative(Unary op, T x, T y, T alpha) {
  switch (op) {
    case Unary::neg: return T(-1);
    case Unary::exp: return y;
    case Unary::log: return T(1) / x;
    case Unary::sqrt: return T(0.5) / y;
    case Unary::rsqrt: return T(-0.5) * y * y * y;
    case Unary::tanh: return T(1) - y * y;
    case Unary::sigmoid: return y * (T(1) - y);
    case Unary::relu: return x > T(0) ? T(1) : T(0);
    case Unary::gelu_erf: return gelu_derivative(x);
    case Unary::gelu_tanh: return gelu_tanh_derivative(x);
    case Unary::silu: return sigmoid(x) * (T(1) + x * (T(1) - sigmoid(x)));
    case Unary::softplus: return sigmoid(x);
    case Unary::affine: return alpha;
    case Unary::pow: return alpha * std::pow(x, alpha - T(1));
    case Unary::rdiv: return -alpha / (x * x);
    case Unary::square: return T(2) * x;
    case Unary::abs: return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
  }
  return T(0);
}

}  // namespace

template <class T>
void unary_forward(Unary op, T* y, const T* x, int64_t n, T alpha, T beta) {
#pragma omp parallel for if (worth_threads(n))
  for (int64_t i = 0; i < n; ++i) y[i] = apply(op, x[i], alpha, beta);
}

template <class T>
void unary_backward(Unary op, T* dx, const T* dy, const T* x, const T* y, int64_t n, T alpha, T /*beta*/) {
  const bool from_y = reads_y(op);  // the other pointer may be null
#pragma omp parallel for if (worth_threads(n))
  for (int64_t i = 0; i < n; ++i) {
    const T xi = from_y ? T(0) : x ? x[i] : T(0), yi = from_y ? y[i] : T(0);
    dx[i] = dy[i] * derivative(op, xi, yi, alpha);
  }
}

// A row of x is (first half, second half), I each; the activated half is the second
// (y = a gelu(g)) or, with activate_first, the first (y = gelu(a) g).
template <class T>
void geglu_forward(T* y, const T* x, int64_t rows, int64_t I, bool activate_first) {
#pragma omp parallel for if (worth_threads(rows * I))
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < I; ++j) {
      const T first = x[r * 2 * I + j], second = x[r * 2 * I + I + j];
      y[r * I + j] = activate_first ? gelu(first) * second : first * gelu(second);
    }
}

// y = p gelu(q):  dp = dy gelu(q),  dq = dy p gelu'(q)   (p, q the plain and activated halves)
template <class T>
void geglu_backward(T* dx, const T* dy, const T* x, int64_t rows, int64_t I, bool activate_first) {
#pragma omp parallel for if (worth_threads(rows * I))
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < I; ++j) {
      const int64_t first = r * 2 * I + j, second = first + I;
      const int64_t p = activate_first ? second : first, q = activate_first ? first : second;
      const T g = dy[r * I + j];
      dx[p] = g * gelu(x[q]);
      dx[q] = g * x[p] * gelu_derivative(x[q]);
    }
}

// nBRC: a = 1 + tanh(ga), c = sigmoid(gc), v = tanh(gu + a h), out = v + c (h - v). Backward:
// dv = dout (1 - c) (1 - v^2) is d gu; d ga = dv h (1 - tanh(ga)^2); d gc = dout (h - v) c (1 - c);
// dh = dout c + dv a.
template <class T>
void nbrc_forward(T* out, const T* ga, const T* gc, const T* gu, const T* h, int64_t n) {
#pragma omp parallel for if (worth_threads(n))
  for (int64_t i = 0; i < n; ++i) {
    const T a = T(1) + std::tanh(ga[i]), c = sigmoid(gc[i]), v = std::tanh(gu[i] + a * h[i]);
    out[i] = v + c * (h[i] - v);
  }
}

template <class T>
void nbrc_backward(T* dga, T* dgc, T* dgu, T* dh, const T* dout, const T* ga, const T* gc, const T* gu, const T* h,
                   int64_t n) {
#pragma omp parallel for if (worth_threads(n))
  for (int64_t i = 0; i < n; ++i) {
    const T t = std::tanh(ga[i]), a = T(1) + t, c = sigmoid(gc[i]), v = std::tanh(gu[i] + a * h[i]);
    const T dv = dout[i] * (T(1) - c) * (T(1) - v * v);
    dgu[i] = dv;
    dga[i] = dv * h[i] * (T(1) - t * t);
    dgc[i] = dout[i] * (h[i] - v) * c * (T(1) - c);
    dh[i] = dout[i] * c + dv * a;
  }
}

#define MNEMO_INSTANTIATE(T)                                                                   \
  template void nbrc_forward<T>(T*, const T*, const T*, const T*, const T*, int64_t);          \
  template void nbrc_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, const T*, int64_t); \
  template void unary_forward<T>(Unary, T*, const T*, int64_t, T, T);                          \
  template void unary_backward<T>(Unary, T*, const T*, const T*, const T*, int64_t, T, T);     \
  template void geglu_forward<T>(T*, const T*, int64_t, int64_t, bool);                        \
  template void geglu_backward<T>(T*, const T*, const T*, int64_t, int64_t, bool);
MNEMO_INSTANTIATE(float)
MNEMO_INSTANTIATE(double)
#undef MNEMO_INSTANTIATE

}  // namespace mnemo::kernels::ref
