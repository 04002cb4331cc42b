// CPU optimizer updates, in the same order of operations as PyTorch's AdamW and SGD.
#include <cmath>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"

namespace mnemo::kernels::cpu {

// w <- w (1 - lr wd);  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
// w <- w - lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)
template <class T>
void adamw_step(T* w, const T* g, T* m, T* v, int64_t n, const AdamWHyper& h) {
  const double decay = 1.0 - h.lr * h.weight_decay;
  const double step = h.lr / h.bias_correction1;
  const double sqrt_bc2 = std::sqrt(h.bias_correction2);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const double gi = double(g[i]);
    const double mi = h.beta1 * double(m[i]) + (1.0 - h.beta1) * gi;
    const double vi = h.beta2 * double(v[i]) + (1.0 - h.beta2) * gi * gi;
    m[i] = T(mi);
    v[i] = T(vi);
    const double denom = std::sqrt(vi) / sqrt_bc2 + h.eps;
    w[i] = T(double(w[i]) * decay - step * mi / denom);
  }
}

// d = g + wd w;  buf <- first ? d : momentum buf + (1 - dampening) d;
// d <- nesterov ? d + momentum buf : buf;  w <- w - lr d
template <class T>
void sgd_step(T* w, const T* g, T* buf, int64_t n, const SgdHyper& h) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    double d = double(g[i]) + h.weight_decay * double(w[i]);
    if (h.momentum != 0.0) {
      const double b = h.first_step ? d : h.momentum * double(buf[i]) + (1.0 - h.dampening) * d;
      buf[i] = T(b);
      d = h.nesterov ? d + h.momentum * b : b;
    }
    w[i] = T(double(w[i]) - h.lr * d);
  }
}

template void adamw_step<float>(float*, const float*, float*, float*, int64_t, const AdamWHyper&);
template void sgd_step<float>(float*, const float*, float*, int64_t, const SgdHyper&);

}  // namespace mnemo::kernels::cpu
